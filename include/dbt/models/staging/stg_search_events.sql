{#
    A view (the staging folder's default), like stg_browsing_events: the raw
    search log typed, renamed and keyed, one row per raw row. Rows a re-loaded
    batch or a client's retry appended twice are both here (same event_id);
    the one model that reads searches, fct_sessions, counts each event_id once,
    for the sessions it rebuilds. Nothing else reads the searches, so no build
    copies the log's query vectors into a table of its own.
#}

with

source as (

    select * from {{ source('raw', 'search_train') }}

),

cleaned as (

    select
        session_id_hash,
        nullif(query_vector, '') as query_vector,
        nullif(clicked_skus_hash, '') as clicked_skus_hash,
        nullif(product_skus_hash, '') as product_skus_hash,
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
            'query_vector',
            'clicked_skus_hash',
            'product_skus_hash',
        ]) }} as event_id,
        session_id_hash as session_id,
        -- the session's integer key, as in stg_browsing_events
        {{ hash_key(['session_id_hash']) }} as session_key,

        ---------- lists and vectors, kept as the source's text
        query_vector,
        clicked_skus_hash,
        product_skus_hash as shown_skus_hash,

        ---------- numerics
        {{ text_list_length('clicked_skus_hash') }} as count_clicked_skus,
        {{ text_list_length('product_skus_hash') }} as count_shown_skus,

        ---------- timestamps
        server_timestamp_epoch_ms as event_ms,
        {{ epoch_ms_to_timestamp('server_timestamp_epoch_ms') }} as event_at,

        ---------- lineage
        batch_id,
        ingested_at,
        -- when the event reached Skiff (epoch ms): fct_sessions rebuilds the
        -- sessions whose searches arrived in its interval
        arrival_ts_ms

    from cleaned

)

select * from renamed
