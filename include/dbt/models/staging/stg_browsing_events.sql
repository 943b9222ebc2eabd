{#
    A view (the staging folder's default): the raw log typed, renamed and keyed,
    one row per raw row. Rows a re-loaded batch appended twice are both here;
    int_session_events keeps the first copy, in the same window pass that orders
    each session, so the log is sorted once per build, not twice.
#}

with

source as (

    select * from {{ source('raw', 'browsing_train') }}

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
        ingested_at,
        arrival_ts_ms

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
        -- 63-bit integer keys of the session and the SKU: the window and the
        -- aggregates of the intermediate models group and compare these, not
        -- the 64-character hashes (macros/cross_db.sql, hash_key)
        {{ hash_key(['session_id_hash']) }} as session_key,
        product_sku_hash,
        case
            when product_sku_hash is not null
                then {{ hash_key(['product_sku_hash']) }}
        end as sku_key,
        hashed_url as url_hash,

        ---------- text
        event_type,
        product_action,

        ---------- timestamps
        server_timestamp_epoch_ms as event_ms,
        {{ epoch_ms_to_timestamp('server_timestamp_epoch_ms') }} as event_at,

        ---------- lineage
        batch_id,
        ingested_at,
        -- when the event reached Skiff (epoch ms): incremental runs rebuild the
        -- sessions whose events arrived in their interval
        arrival_ts_ms

    from cleaned

)

select * from renamed
