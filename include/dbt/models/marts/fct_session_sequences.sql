{#
    Incremental, delete+insert by session_id, like fct_sessions: a run rebuilds
    the sessions whose browsing events arrived in its data interval, from all
    their events (macros/skiff_window.sql).
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='session_id',
    )
}}

{%- set watermark = 'max(' ~ timestamp_to_epoch_ms('session_start_at') ~ ')' -%}

with

session_events as (

    select * from {{ ref('int_session_events') }}
    {{ session_window_filter([ref('stg_browsing_events')], watermark) }}

),

-- a SKU enters the sequence on a detail event, unless it is the SKU of the
-- session's previous detail event (consecutive repeats collapse)
item_events as (

    select
        session_id,
        event_index,
        product_sku_hash,
        product_sku_hash is distinct from lag(product_sku_hash) over (
            partition by session_id
            order by event_index
        ) as is_new_item

    from session_events
    where event_token = 'detail' and product_sku_hash is not null

),

item_sequences as (

    select
        session_id,
        {{ ordered_list('product_sku_hash', 'event_index') }} as sku_sequence,
        count(*) as count_items

    from item_events
    where is_new_item
    group by 1

),

token_sequences as (

    select
        session_id,
        min(event_at) as session_start_at,
        {{ ordered_list('event_token', 'event_index') }} as event_tokens,
        count(*) as count_events,
        count(case when event_type = 'event_product' then 1 end)
            as count_product_events

    from session_events
    group by 1

),

joined as (

    select
        token_sequences.*,
        coalesce(item_sequences.sku_sequence, {{ empty_list() }})
            as sku_sequence,
        coalesce(item_sequences.count_items, 0) as count_items

    from token_sequences
    left join item_sequences
        on token_sequences.session_id = item_sequences.session_id

),

final as (

    select
        session_id,
        session_start_at,
        sku_sequence,
        event_tokens,
        count_items,
        count_events

    from joined
    where count_product_events > 0

)

select * from final
