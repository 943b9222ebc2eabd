{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_id',
        incremental_predicates=window_delete_predicates('interval'),
    )
}}

with

source as (

    select * from {{ source('raw', 'browsing_train') }}
    {{ interval_filter('server_timestamp_epoch_ms') }}

),

cleaned as (

    select
        session_id_hash,
        event_type,
        -- empty on a pageview in the official files
        case
            when event_type = 'pageview' then null
            else nullif(product_action, '')
        end as product_action,
        nullif(product_sku_hash, '') as product_sku_hash,
        nullif(hashed_url, '') as hashed_url,
        server_timestamp_epoch_ms,
        batch_id,
        ingested_at

    from source

),

renamed as (

    select

        ---------- ids
        {{ hash_key([
            'session_id_hash',
            'server_timestamp_epoch_ms',
            'event_type',
            'product_action',
            'product_sku_hash',
            'hashed_url',
        ]) }} as event_id,
        session_id_hash as session_id,
        product_sku_hash,
        hashed_url as url_hash,

        ---------- text
        event_type,
        product_action,

        ---------- timestamps
        server_timestamp_epoch_ms as event_ms,
        {{ epoch_ms_to_timestamp('server_timestamp_epoch_ms') }} as event_at,

        ---------- lineage
        batch_id,
        ingested_at

    from cleaned

),

-- a re-loaded batch appends the same rows again: keep the earliest copy
deduplicated as (

    select * from renamed
    qualify
        row_number() over (
            partition by event_id
            order by ingested_at asc, batch_id asc
        ) = 1

)

-- in event-time order, so that later lookback scans prune on event_ms
select * from deduplicated
order by event_ms
