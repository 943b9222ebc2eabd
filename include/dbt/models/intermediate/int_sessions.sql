{#
    One pass over int_session_events for both session marts: every per-session
    aggregate fct_sessions and fct_session_sequences publish (counts, first
    add and purchase, the token and SKU sequences), one row per session. The
    marts select from it; before, each grouped the 36M events itself.

    Incremental, the intermediate folder's session_rebuild by session_id, its
    delete bounded by the session's start (macros/session_rebuild.sql): a run
    rebuilds the sessions whose browsing events arrived in its data interval,
    from all their events (macros/skiff_window.sql). Rows are written in
    start order, so that bound, and the readers' bound on last_event_ms,
    prune the 5M-row table's row groups at the real dataset's size.
#}
{{
    config(
        session_time='first_event_ms',
    )
}}

{%- set watermark = 'max(last_event_ms)' -%}

with

session_events as (

    select * from {{ ref('int_session_events') }}
    {{ session_window_filter([ref('stg_browsing_events')], watermark) }}

),

-- the SKUs of sku_sequence: int_session_events flags them (is_new_item) in
-- its window pass, so no second window sorts the detail events here
item_sequences as (

    select
        session_key,
        {{ ordered_list('product_sku_hash', 'event_index') }} as sku_sequence,
        count(*) as count_items

    from session_events
    where is_new_item
    group by 1

),

-- grouped by the 63-bit session_key, not the 64-character session_id (an
-- integer hashes and compares in a fraction of the time); the text rides
-- along as an aggregate, the same in every row of a session
session_summary as (

    select
        session_key,
        any_value(session_id) as session_id,

        ---------- timestamps
        min(event_ms) as first_event_ms,
        max(event_ms) as last_event_ms,

        ---------- counts
        count(*) as count_events,
        count(case when event_token = 'view' then 1 end) as count_pageviews,
        count(case when event_token = 'detail' then 1 end) as count_details,
        count(case when event_token = 'add' then 1 end) as count_adds,
        count(case when event_token = 'remove' then 1 end) as count_removes,
        count(case when event_token = 'purchase' then 1 end)
            as count_purchases,
        count(case when event_type = 'event_product' then 1 end)
            as count_product_events,
        count(distinct sku_key) as count_distinct_skus,

        ---------- first add / purchase
        min(case when event_token = 'add' then event_ms end) as first_add_ms,
        min(case when event_token = 'add' then event_index end)
            as first_add_event_index,
        min(case when event_token = 'purchase' then event_ms end)
            as first_purchase_ms,

        ---------- sequence
        {{ ordered_list('event_token', 'event_index') }} as event_tokens

    from session_events
    group by 1

),

joined as (

    select
        session_summary.*,
        coalesce(item_sequences.sku_sequence, {{ empty_list() }})
            as sku_sequence,
        coalesce(item_sequences.count_items, 0) as count_items

    from session_summary
    left join item_sequences
        on session_summary.session_key = item_sequences.session_key

),

final as (

    select
        ---------- ids
        session_id,

        ---------- timestamps
        {{ epoch_ms_to_timestamp('first_event_ms') }} as session_start_at,
        {{ epoch_ms_to_timestamp('last_event_ms') }} as session_end_at,
        cast(last_event_ms - first_event_ms as double) / 1000
            as duration_seconds,
        first_event_ms,
        last_event_ms,

        ---------- counts
        count_events,
        count_pageviews,
        count_details,
        count_adds,
        count_removes,
        count_purchases,
        count_product_events,
        count_distinct_skus,

        ---------- first add / purchase
        {{ epoch_ms_to_timestamp('first_add_ms') }} as first_add_at,
        first_add_event_index,
        {{ epoch_ms_to_timestamp('first_purchase_ms') }} as first_purchase_at,

        ---------- sequences
        event_tokens,
        sku_sequence,
        count_items

    from joined

)

select * from final
order by first_event_ms
