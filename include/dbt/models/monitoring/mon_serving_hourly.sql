{#
    Per model version and hour of service: volume, errors, fallbacks, unknown
    SKUs, latency and the prediction log's own losses. Incremental by hour
    (macros/monitoring.sql: the hours of what arrived in the interval, rebuilt
    whole).

    A request is one answer (its sessions share its status and latency);
    errors are answers of status 500 and over (the server failed: model error,
    timeout, no model), bad_requests those of 4xx (the caller's). Rates of
    fallback and unknown SKUs are over the answered (200) sessions of a
    next-item model; null for intent. dropped_events: the events the model
    servers' prediction logs dropped during the hour (dropped_before grows by
    them between one sender's consecutive events), so a lossy log shows.
#}
{{ config(unique_key=['hour_start', 'model', 'model_version']) }}

with

hours as (

    select * from {{ ref('stg_predictions') }}
    where {{ monitoring_hours() }}

),

-- the sender's previous event may be in the hour before: read it for the drop counts
senders as (

    select sender_id, served_ms, session_index, dropped_before, hour_start
    from {{ ref('stg_predictions') }}
    where sender_id is not null
        and hour_start >= (select {{ dbt.dateadd('hour', -1, 'min(hour_start)') }} from hours)
        and hour_start <= (select max(hour_start) from hours)

),

drops as (

    select
        hour_start,
        sender_id,
        greatest(dropped_before - coalesce(lag(dropped_before) over (
            partition by sender_id order by served_ms, dropped_before, session_index
        ), dropped_before), 0) as dropped

    from senders

),

hourly_drops as (

    select hour_start, sum(dropped) as dropped_events
    from drops
    where hour_start in (select hour_start from hours)
    group by hour_start

),

predictions as (

    select * from hours
    qualify row_number() over (
        partition by request_id, session_index order by arrival_ts_ms
    ) = 1

),

requests as (

    select
        hour_start,
        model,
        model_version,
        request_id,
        max(status) as status,
        max(latency_ms) as latency_ms

    from predictions
    group by hour_start, model, model_version, request_id

),

request_stats as (

    select
        hour_start,
        model,
        model_version,
        count(*) as requests,
        sum(case when status >= 500 then 1 else 0 end) as errors,
        sum(case when status >= 400 and status < 500 then 1 else 0 end) as bad_requests,
        {{ percentile('latency_ms', 0.5) }} as latency_p50_ms,
        {{ percentile('latency_ms', 0.99) }} as latency_p99_ms

    from requests
    group by hour_start, model, model_version

),

session_stats as (

    select
        hour_start,
        model,
        model_version,
        count(*) as sessions,
        sum(case when status = 200 then 1 else 0 end) as answered_sessions,
        sum(case when status = 200 and model = 'rec' and is_fallback then 1 else 0 end)
            as fallbacks,
        sum(case when status = 200 and model = 'rec' then ignored_count else 0 end)
            as unknown_skus,
        sum(case when status = 200 and model = 'rec' then session_length else 0 end)
            as session_skus

    from predictions
    group by hour_start, model, model_version

),

final as (

    select
        r.hour_start,
        r.model,
        r.model_version,
        r.requests,
        s.sessions,
        r.errors,
        r.bad_requests,
        r.errors * 1.0 / r.requests as error_rate,
        case
            when r.model = 'rec' and s.answered_sessions > 0
                then s.fallbacks * 1.0 / s.answered_sessions
        end as fallback_rate,
        case
            when r.model = 'rec' and s.session_skus > 0
                then s.unknown_skus * 1.0 / s.session_skus
        end as unknown_sku_share,
        r.latency_p50_ms,
        r.latency_p99_ms,
        coalesce(d.dropped_events, 0) as dropped_events

    from request_stats as r
    inner join session_stats as s
        on s.hour_start = r.hour_start
        and s.model = r.model
        and s.model_version = r.model_version
    left join hourly_drops as d on d.hour_start = r.hour_start

)

select * from final
