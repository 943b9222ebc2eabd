{#
    Incremental, session_rebuild by session_id (the delete bounded by the
    session's start, macros/session_rebuild.sql): a run rebuilds the sessions whose
    browsing or search events arrived in its data interval (macros/skiff_window.sql).
    The per-session aggregates come from int_sessions (one pass over the events
    for both session marts); this model adds the searches and the labels.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='session_rebuild',
        unique_key='session_id',
        session_time='session_start_at',
    )
}}

{%- set touched_by = [ref('stg_browsing_events'), ref('stg_search_events')] -%}
{%- set watermark = 'max(' ~ timestamp_to_epoch_ms('session_end_at') ~ ')' -%}

with

sessions as (

    select * from {{ ref('int_sessions') }}
    {{ session_window_filter(touched_by, watermark, time_column='last_event_ms') }}

),

search_events as (

    select * from {{ ref('stg_search_events') }}
    {{ session_window_filter(touched_by, watermark) }}

),

-- the view has a row per raw row: a re-delivered search counts once
search_summary as (

    select
        session_id,
        count(distinct event_id) as count_searches

    from search_events
    group by 1

),

joined as (

    select
        sessions.*,
        coalesce(search_summary.count_searches, 0) as count_searches

    from sessions
    left join search_summary
        on sessions.session_id = search_summary.session_id

),

compute_labels as (

    select
        *,
        count_adds > 0 as has_add,
        count_purchases > 0 as has_purchase,
        count_adds > 0 and count_purchases = 0 as is_cart_abandoned

    from joined

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
