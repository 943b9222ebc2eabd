{#
    Incremental, session_rebuild by session_id (the delete bounded by the
    session's start, macros/session_rebuild.sql), like fct_sessions: a run rebuilds
    the sessions whose browsing events arrived in its data interval
    (macros/skiff_window.sql). The sequences come from int_sessions (one pass
    over the events for both session marts).
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='session_rebuild',
        unique_key='session_id',
        session_time='session_start_at',
    )
}}

{%- set watermark = 'max(' ~ timestamp_to_epoch_ms('session_start_at') ~ ')' -%}

with

sessions as (

    select * from {{ ref('int_sessions') }}
    {{ session_window_filter(
        [ref('stg_browsing_events')], watermark, time_column='last_event_ms'
    ) }}

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
