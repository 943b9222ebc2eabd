{#
    Incremental (folder config: session_rebuild, here by session_key): a run
    rebuilds the sessions whose browsing events arrived in its data interval,
    from all their events (macros/skiff_window.sql).
    The 36M-row table of the full log, in integers and short tokens only: the
    session and the SKU as their 63-bit keys, not their 64-character texts,
    which int_sessions joins back once per session and once per SKU. Carried
    through the window's sort and written 36M times, the two texts took two
    fifths of this model's full refresh at the real dataset's size (49.8 s
    with them, 30.5 s without: docs/performance.md).
    The raw event type and action are in event_token.
#}
{{
    config(
        unique_key='session_key',
    )
}}

with

browsing_events as (

    select * from {{ ref('stg_browsing_events') }}
    {{ session_window_filter([ref('stg_browsing_events')]) }}

),

tokenized as (

    select
        *,
        case
            when event_type = 'pageview' then 'view'
            else product_action
        end as event_token,
        -- order of events logged in the same millisecond: the product event
        -- before the pageview of its page, then the funnel order
        case
            when event_type = 'pageview' then 5
            when product_action = 'detail' then 1
            when product_action = 'add' then 2
            when product_action = 'remove' then 3
            when product_action = 'purchase' then 4
            else 6
        end as same_ms_rank

    from browsing_events

),

-- One window pass (one sort) over each session, in event order, on integer
-- keys only: the session's 63-bit session_key partitions (not its
-- 64-character text) and the integer event_id breaks the last ties. It gives
-- the index, the gap to the previous event, the SKU key of the previous detail
-- event (so int_sessions builds the SKU sequences without sorting the events
-- again), and drops the copies a re-loaded batch appended.
-- Copies agree on every column but their lineage (batch_id, ingested_at),
-- which this model does not keep, so any one of them can stay. dense_rank
-- gives copies one index, so the indexes of the rows kept run 1, 2, 3 ...
ordered as (

    select
        *,
        dense_rank() over (
            partition by session_key
            order by event_ms asc, same_ms_rank asc, event_id asc
        ) as event_index,
        cast(
            event_ms - lag(event_ms) over (
                partition by session_key
                order by event_ms asc, same_ms_rank asc, event_id asc
            )
            as double
        ) / 1000 as seconds_since_prev,
        {{ lag_ignore_nulls(
            "case when event_token = 'detail' then sku_key end"
        ) }} over (
            partition by session_key
            order by event_ms asc, same_ms_rank asc, event_id asc
        ) as prev_detail_sku_key

    from tokenized
    qualify
        event_id is distinct from lag(event_id) over (
            partition by session_key
            order by event_ms asc, same_ms_rank asc, event_id asc
        )

),

final as (

    select
        ---------- ids
        session_key,
        event_index,
        event_id,
        sku_key,

        ---------- text
        event_token,

        ---------- numerics
        seconds_since_prev,

        ---------- flags
        -- a detail event whose SKU is not the previous detail event's: its SKU
        -- enters the session's sku_sequence (consecutive repeats collapse)
        event_token = 'detail'
            and sku_key is not null
            and sku_key is distinct from prev_detail_sku_key
            as is_new_item,

        ---------- timestamps
        event_ms

    from ordered

)

select * from final
order by event_ms
