{#
    Incremental, delete+insert by session_id: a run rebuilds the sessions whose
    browsing or search events arrived in its data interval, from all their
    events (macros/skiff_window.sql).
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='session_id',
    )
}}

{%- set touched_by = [ref('stg_browsing_events'), ref('stg_search_events')] -%}
{%- set watermark = 'max(' ~ timestamp_to_epoch_ms('session_end_at') ~ ')' -%}

with

session_events as (

    select * from {{ ref('int_session_events') }}
    {{ session_window_filter(touched_by, watermark) }}

),

search_events as (

    select * from {{ ref('stg_search_events') }}
    {{ session_window_filter(touched_by, watermark) }}

),

search_summary as (

    select
        session_id,
        count(*) as count_searches

    from search_events
    group by 1

),

session_summary as (

    select
        session_id,

        ---------- timestamps
        min(event_at) as session_start_at,
        max(event_at) as session_end_at,
        cast(max(event_ms) - min(event_ms) as double) / 1000
            as duration_seconds,

        ---------- counts
        count(*) as count_events,
        count(case when event_token = 'view' then 1 end) as count_pageviews,
        count(case when event_token = 'detail' then 1 end) as count_details,
        count(case when event_token = 'add' then 1 end) as count_adds,
        count(case when event_token = 'remove' then 1 end) as count_removes,
        count(case when event_token = 'purchase' then 1 end)
            as count_purchases,
        count(distinct product_sku_hash) as count_distinct_skus,

        ---------- first add / purchase
        min(case when event_token = 'add' then event_at end) as first_add_at,
        min(case when event_token = 'add' then event_index end)
            as first_add_event_index,
        min(case when event_token = 'purchase' then event_at end)
            as first_purchase_at

    from session_events
    group by 1

),

joined as (

    select
        session_summary.*,
        coalesce(search_summary.count_searches, 0) as count_searches

    from session_summary
    left join search_summary
        on session_summary.session_id = search_summary.session_id

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
