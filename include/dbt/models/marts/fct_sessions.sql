{#
    A view over int_sessions, which holds each session's counts, first add and
    purchase and searches (its one pass over the events, rebuilt hour by
    hour): this mart publishes them with the shopper-intent labels. A table
    would copy int_sessions' 5M rows on every full refresh (6 s at the real
    dataset's size). Readers filter on the session's times, which
    int_sessions' start order lets DuckDB prune on.
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

compute_labels as (

    select
        *,
        count_adds > 0 as has_add,
        count_purchases > 0 as has_purchase,
        count_adds > 0 and count_purchases = 0 as is_cart_abandoned

    from sessions

),

final as (

    select
        ---------- ids
        session_id,

        ---------- timestamps
        session_start_at,
        session_end_at,
        duration_seconds,

        ---------- counts
        count_events,
        count_pageviews,
        count_details,
        count_adds,
        count_removes,
        count_purchases,
        count_distinct_skus,
        count_searches,

        ---------- labels
        has_add,
        first_add_at,
        first_add_event_index,
        has_purchase,
        first_purchase_at,
        is_cart_abandoned

    from compute_labels

)

select * from final
