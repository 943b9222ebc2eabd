{#
    Online quality per model version and hour of service, from what the
    shoppers did next (docs/monitoring.md). Only answered predictions whose
    caller named the session (/predict?session_id=...) are judged.

    - rec, hit_rate_at_20: the session's next detail view after the answer
      (within quality_horizon_minutes): was its SKU among the served items
      (the list as served: k of the request, at most the model's 20)?
      online_value is the share of judged answers with a hit; a prediction
      whose session viewed no product afterwards is not judged.
    - intent, calibration_error: the expected calibration error of the served
      probabilities against "the session purchased within
      quality_horizon_minutes": over ten probability bins, the bins' weighted
      mean of |mean predicted - observed purchase rate|. Every answered,
      named prediction is judged; mean_predicted and observed_rate are over
      all of them.

    The shoppers' next events arrive after the answer, so an hour is judged
    one hour late: a run of [s, e) rebuilds the hours of the predictions that
    arrived in [s - 1h, e - 1h), reading browsing events up to what has
    arrived by then (the horizon, 30 minutes, fits in the hour of lag).
#}
{{ config(unique_key=['hour_start', 'model', 'model_version', 'metric']) }}

{%- set horizon_ms = var('quality_horizon_minutes', 30) | int * 60 * 1000 -%}

with

hours as (

    select * from {{ ref('stg_predictions') }}
    where {{ monitoring_hours(lag_hours=1) }}

),

predictions as (

    select * from hours
    where status = 200 and session_id is not null
    qualify row_number() over (
        partition by request_id, session_index order by arrival_ts_ms
    ) = 1

),

later_events as (

    select e.session_id, e.event_ms, e.product_sku_hash, e.event_type, e.product_action
    from {{ ref('stg_browsing_events') }} as e
    where e.session_id in (select session_id from predictions)
        and e.event_ms > (select min(served_ms) from predictions)
        and e.event_ms <= (select max(served_ms) from predictions) + {{ horizon_ms }}

),

-- rec: the first detail view after each answer
next_items as (

    select
        p.hour_start,
        p.model,
        p.model_version,
        p.request_id,
        p.session_index,
        p.output_items,
        e.product_sku_hash as next_sku

    from predictions as p
    inner join later_events as e
        on e.session_id = p.session_id
        and e.event_ms > p.served_ms
        and e.event_ms <= p.served_ms + {{ horizon_ms }}
        and e.product_action = 'detail'
        and e.product_sku_hash is not null
    where p.model = 'rec'
    qualify row_number() over (
        partition by p.request_id, p.session_index order by e.event_ms, e.product_sku_hash
    ) = 1

),

hit_rates as (

    select
        hour_start,
        model,
        model_version,
        'hit_rate_at_20' as metric,
        avg(case
            when position('''' || next_sku || '''' in coalesce(output_items, '')) > 0
                then 1.0
            else 0.0
        end) as online_value,
        count(*) as scored,
        cast(null as double) as mean_predicted,
        cast(null as double) as observed_rate

    from next_items
    group by hour_start, model, model_version

),

-- intent: did the session purchase within the horizon?
outcomes as (

    select
        p.hour_start,
        p.model,
        p.model_version,
        p.request_id,
        p.session_index,
        p.output_probability as predicted,
        max(case when e.session_id is not null then 1.0 else 0.0 end) as observed

    from predictions as p
    left join later_events as e
        on e.session_id = p.session_id
        and e.event_ms > p.served_ms
        and e.event_ms <= p.served_ms + {{ horizon_ms }}
        and e.product_action = 'purchase'
    where p.model = 'intent' and p.output_probability is not null
    group by p.hour_start, p.model, p.model_version, p.request_id, p.session_index,
        p.output_probability

),

bins as (

    select
        hour_start,
        model,
        model_version,
        least(floor(predicted * 10), 9) as probability_bin,
        count(*) as n,
        avg(predicted) as mean_predicted,
        avg(observed) as observed_rate

    from outcomes
    group by hour_start, model, model_version, least(floor(predicted * 10), 9)

),

calibration as (

    select
        hour_start,
        model,
        model_version,
        'calibration_error' as metric,
        sum(n * abs(mean_predicted - observed_rate)) / sum(n) as online_value,
        sum(n) as scored,
        sum(n * mean_predicted) / sum(n) as mean_predicted,
        sum(n * observed_rate) / sum(n) as observed_rate

    from bins
    group by hour_start, model, model_version

),

final as (

    select * from hit_rates
    union all
    select * from calibration

)

select * from final
