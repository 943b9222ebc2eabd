{#
    A view: the raw prediction log typed and renamed, one row per raw row (a
    collector retry's copy included; the marts keep one per request_id and
    session_index). The model's hour is its answer's: hour_start.
#}
{{ config(materialized='view', schema='staging') }}

with

source as (

    select * from {{ source('raw', 'predictions') }}

),

renamed as (

    select

        ---------- ids
        request_id,
        session_index,
        session_id_hash as session_id,
        sender_id,

        ---------- the model
        model,
        coalesce(model_version, '') as model_version,
        endpoint,
        trained_until_ms,

        ---------- what it was asked and said
        coalesce(session_length, 0) as session_length,
        input_tokens,
        output_items,
        output_probability,
        coalesce(fallback, 0) = 1 as is_fallback,
        coalesce(ignored_count, 0) as ignored_count,

        ---------- how it went
        status,
        latency_ms,
        dropped_before,

        ---------- timestamps
        served_at as served_ms,
        {{ epoch_ms_to_timestamp('served_at') }} as served_at,
        date_trunc('hour', {{ epoch_ms_to_timestamp('served_at') }}) as hour_start,

        ---------- lineage
        batch_id,
        ingested_at,
        arrival_ts_ms

    from source

)

select * from renamed
