{#
    A view over int_sessions: its sessions with a product event, and their
    sequences. int_sessions already holds every row of this mart (its one
    pass over the events builds the sequences, rebuilt hour by hour), so a
    table would only copy it: 9 s of a full refresh at the real dataset's
    size. Readers filter on session_start_at, which int_sessions' start
    order lets DuckDB prune on.
#}
{{
    config(
        materialized='view',
    )
}}

with

sessions as (

    select * from {{ ref('int_sessions') }}

),

final as (

    select
        session_id,
        session_start_at,
        sku_sequence,
        event_tokens,
        count_items,
        count_events

    from sessions
    where count_product_events > 0

)

select * from final
