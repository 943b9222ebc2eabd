{#
    One pass over int_session_events for both session marts: every per-session
    aggregate fct_sessions and fct_session_sequences publish (counts, first
    add and purchase, the token and SKU sequences, the searches), one row per
    session, grouped by the session's integer key. The marts are views over
    it.

    int_session_events keeps keys, not texts: this model joins the session's
    id back once per session and the SKU's hash once per SKU, from maps built
    over the staging events of the sessions it rebuilds.

    Incremental, session_rebuild by session_key, its delete bounded by the
    session's start (macros/session_rebuild.sql): a run rebuilds the sessions
    whose browsing or search events arrived in its data interval, from all
    their events (macros/skiff_window.sql). Rows are written in start order,
    so that bound, and the readers' bounds on the session's times, prune the
    5M-row table's row groups at the real dataset's size.
#}
{{
    config(
        unique_key='session_key',
        session_time='first_event_ms',
    )
}}

{%- set touched_by = [ref('stg_browsing_events'), ref('stg_search_events')] -%}
{%- set watermark = 'max(last_event_ms)' -%}
{#- one filter for every read of events: on an incremental run it queries its event-time
    bound once (rebuild_since_ms), not once per read -#}
{%- set rebuilt_sessions = session_window_filter(touched_by, watermark) -%}
{%- set tokens = ['view', 'detail', 'add', 'remove', 'purchase'] -%}

with

session_events as (

    select * from {{ ref('int_session_events') }}
    {{ rebuilt_sessions }}

),

-- the texts of the keys, each aggregate reading the staging view on its own
-- (DuckDB materialises a CTE read twice: 36M rows, on a full refresh)
session_ids as (

    select
        session_key,
        -- one text per key: stg_browsing_events' one_value_per_key test
        any_value(session_id) as session_id

    from {{ ref('stg_browsing_events') }}
    {{ rebuilt_sessions }}
    group by 1

),

sku_names as (

    select
        sku_key,
        any_value(product_sku_hash) as product_sku_hash

    from {{ ref('stg_browsing_events') }}
    {{ rebuilt_sessions }}
    group by 1

),

-- the view has a row per raw row: a re-delivered search counts once
search_counts as (

    select
        session_key,
        count(distinct event_id) as count_searches

    from {{ ref('stg_search_events') }}
    {{ rebuilt_sessions }}
    group by 1

),

-- the sequence of SKUs, from the events int_session_events flags is_new_item in
-- its window pass (consecutive repeats collapsed), so nothing here sorts the
-- events. A read of its own (a CTE read twice is materialised): only the flagged
-- rows carry a 64-character hash into a list, 4 s less at 36M events than a list
-- in the aggregate over every event
item_events as (

    select * from {{ ref('int_session_events') }}
    {{ rebuilt_sessions }}

),

item_sequences as (

    select
        item_events.session_key,
        {{ ordered_list('sku_names.product_sku_hash', 'item_events.event_index') }}
            as sku_sequence

    from item_events
    inner join sku_names
        on item_events.sku_key = sku_names.sku_key
    where item_events.is_new_item
    group by 1

),

session_summary as (

    select
        session_key,

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
        -- every event but a pageview
        count(case when event_token is distinct from 'view' then 1 end)
            as count_product_events,
        {{ count_distinct('sku_key') }} as count_distinct_skus,

        ---------- first add / purchase
        min(case when event_token = 'add' then event_ms end) as first_add_ms,
        min(case when event_token = 'add' then event_index end)
            as first_add_event_index,
        min(case when event_token = 'purchase' then event_ms end)
            as first_purchase_ms,

        ---------- sequences
        {{ ordered_list_of('event_token', tokens, 'event_index') }} as event_tokens,
        count(case when is_new_item then 1 end) as count_items

    from session_events
    group by 1

),

final as (

    select
        ---------- ids
        session_ids.session_id,
        session_summary.session_key,

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
        coalesce(search_counts.count_searches, 0) as count_searches,

        ---------- first add / purchase
        {{ epoch_ms_to_timestamp('first_add_ms') }} as first_add_at,
        first_add_event_index,
        {{ epoch_ms_to_timestamp('first_purchase_ms') }} as first_purchase_at,

        ---------- sequences
        event_tokens,
        coalesce(item_sequences.sku_sequence, {{ empty_list() }}) as sku_sequence,
        count_items

    from session_summary
    inner join session_ids
        on session_summary.session_key = session_ids.session_key
    left join search_counts
        on session_summary.session_key = search_counts.session_key
    left join item_sequences
        on session_summary.session_key = item_sequences.session_key

)

select * from final
order by first_event_ms
