{#
    Incremental by session, like int_session_events: a run rebuilds the search
    events of the sessions whose search events arrived in its data interval,
    from all of them (macros/skiff_window.sql), so a late or repeated arrival
    changes the session's rows as a full refresh would.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='session_rebuild',
        unique_key='session_id',
    )
}}

with

source as (

    select * from {{ source('raw', 'search_train') }}
    {{ session_window_filter(
        [source('raw', 'search_train')],
        session_column='session_id_hash',
        time_column='server_timestamp_epoch_ms',
    ) }}

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
        arrival_ts_ms

    from cleaned

),

-- a re-loaded batch or a client's retry appends the same event again: keep
-- the earliest copy (copies differ only in lineage)
deduplicated as (

    select * from renamed
    qualify
        row_number() over (
            partition by event_id
            order by ingested_at asc, batch_id asc, arrival_ts_ms asc
        ) = 1

)

-- in event-time order, so that later lookback scans prune on event_ms
select * from deduplicated
order by event_ms
