{#
    Input drift per model version and hour of service: how far the sessions
    the model was asked about have moved from its training data, as a
    population stability index (macros/monitoring.sql: psi_sql) per feature:

    - session_length: sessions by length (1, 2, 3-4, 5-8, 9-16, 17+ tokens),
      the reference's sessions counted as the prefixes a shopper is asked
      about, one per event;
    - event_type_mix (intent): the event tokens' shares;
    - sku_popularity (rec): the asked SKUs by their rank in the reference
      (top_10, top_100, top_1000, tail) or unseen there.

    The reference is the champion's training data, read from the marts: the
    sessions of fct_session_sequences that started in the drift_reference_hours
    (168) before the end of its training data. That end travels with every
    prediction (trained_until_ms: the interval end its training run read,
    recorded in its bundle); a model without it falls back to its first
    served prediction. A reference of next-item models counts sessions with a
    detail view (what it trains on): their detail SKUs; of intent models every
    session: its event tokens. PSI over 0.25 is the usual "shifted" line
    (docs/monitoring.md). Incremental by hour, like mon_serving_hourly.
#}
{{ config(unique_key=['hour_start', 'model', 'model_version', 'feature']) }}

{%- set reference_ms = var('drift_reference_hours', 168) | int * 3600 * 1000 -%}
{%- set by_hour = ['hour_start', 'model', 'model_version'] -%}
{%- set by_version = ['model', 'model_version'] -%}

with

hours as (

    select * from {{ ref('stg_predictions') }}
    where {{ monitoring_hours() }}

),

served as (

    select * from hours
    where status = 200 and session_length > 0
    qualify row_number() over (
        partition by request_id, session_index order by arrival_ts_ms
    ) = 1

),

served_rec as (

    select * from served where model = 'rec'

),

served_intent as (

    select * from served where model = 'intent'

),

-- each served version's reference window ends where its training data did
versions as (

    select
        model,
        model_version,
        coalesce(max(trained_until_ms), min(served_ms)) as reference_end_ms

    from {{ ref('stg_predictions') }}
    where model_version in (select model_version from served)
    group by model, model_version

),

reference_sessions as (

    select
        v.model,
        v.model_version,
        s.sku_sequence,
        s.event_tokens,
        case when v.model = 'rec' then s.count_items else s.count_events end as length

    from versions as v
    inner join {{ ref('fct_session_sequences') }} as s
        on s.session_start_at >= {{ epoch_ms_to_timestamp('v.reference_end_ms - ' ~ reference_ms) }}
        and s.session_start_at < {{ epoch_ms_to_timestamp('v.reference_end_ms') }}
    where v.model = 'intent' or s.count_items > 0

),

reference_rec as (

    select * from reference_sessions where model = 'rec'

),

reference_intent as (

    select * from reference_sessions where model = 'intent'

),

-- session_length ----------------------------------------------------------------------

-- the buckets' bounds, [lo, hi] (hi null: no end), for both sides
length_buckets as (

    select * from (values
        ('1', 1, 1), ('2', 2, 2), ('3-4', 3, 4), ('5-8', 5, 8), ('9-16', 9, 16),
        ('17+', 17, null)
    ) as b (bucket, lo, hi)

),

current_length as (

    select s.hour_start, s.model, s.model_version, b.bucket, count(*) as n
    from served as s
    inner join length_buckets as b
        on s.session_length >= b.lo and s.session_length <= coalesce(b.hi, s.session_length)
    group by s.hour_start, s.model, s.model_version, b.bucket

),

-- the model is asked about sessions so far, once per event (a page view asks): a reference
-- session of length L stands for its L prefixes, of lengths 1..L, so each bucket [lo, hi]
-- counts min(L, hi) - lo + 1 of them
reference_length as (

    select r.model, r.model_version, b.bucket,
        sum(least(r.length, coalesce(b.hi, r.length)) - b.lo + 1) as n
    from reference_sessions as r
    inner join length_buckets as b on r.length >= b.lo
    group by r.model, r.model_version, b.bucket

),

psi_length as (

    {{ psi_sql('current_length', 'reference_length', by_hour, by_version) }}

),

-- event_type_mix (intent) -------------------------------------------------------------

current_tokens as (

    {{ explode_items('served_intent', text_list_items('input_tokens'), by_hour) }}

),

current_mix as (

    select hour_start, model, model_version, item as bucket, count(*) as n
    from current_tokens
    group by hour_start, model, model_version, item

),

reference_tokens as (

    {{ explode_items('reference_intent', 'event_tokens', by_version) }}

),

reference_mix as (

    select model, model_version, item as bucket, count(*) as n
    from reference_tokens
    group by model, model_version, item

),

psi_mix as (

    {{ psi_sql('current_mix', 'reference_mix', by_hour, by_version) }}

),

-- sku_popularity (rec) ----------------------------------------------------------------

reference_items as (

    {{ explode_items('reference_rec', 'sku_sequence', by_version) }}

),

reference_ranks as (

    select
        model,
        model_version,
        item,
        n,
        row_number() over (
            partition by model, model_version order by n desc, item
        ) as popularity_rank

    from (
        select model, model_version, item, count(*) as n
        from reference_items
        group by model, model_version, item
    ) as counted

),

reference_popularity as (

    select model, model_version, {{ _rank_bucket('popularity_rank') }} as bucket, sum(n) as n
    from reference_ranks
    group by model, model_version, {{ _rank_bucket('popularity_rank') }}

),

current_items as (

    {{ explode_items('served_rec', text_list_items('input_tokens'), by_hour) }}

),

current_popularity as (

    select
        c.hour_start,
        c.model,
        c.model_version,
        coalesce({{ _rank_bucket('r.popularity_rank') }}, 'unseen') as bucket,
        count(*) as n

    from current_items as c
    left join reference_ranks as r
        on r.model = c.model
        and r.model_version = c.model_version
        and r.item = c.item
    group by c.hour_start, c.model, c.model_version,
        coalesce({{ _rank_bucket('r.popularity_rank') }}, 'unseen')

),

psi_popularity as (

    {{ psi_sql('current_popularity', 'reference_popularity', by_hour, by_version) }}

),

-- together ----------------------------------------------------------------------------

-- the shoppers asked about, each once however often it asked (a session asks after each
-- event, and its prefixes are not independent draws): how much the hour's PSI can be trusted
served_counts as (

    select
        hour_start,
        model,
        model_version,
        count(distinct coalesce(
            session_id, request_id || ':' || cast(session_index as varchar)
        )) as served_sessions
    from served
    group by hour_start, model, model_version

),

features as (

    select *, 'session_length' as feature from psi_length
    union all
    select *, 'event_type_mix' as feature from psi_mix
    union all
    select *, 'sku_popularity' as feature from psi_popularity

),

final as (

    select
        f.hour_start,
        f.model,
        f.model_version,
        f.feature,
        f.psi,
        c.served_sessions

    from features as f
    inner join served_counts as c
        on c.hour_start = f.hour_start
        and c.model = f.model
        and c.model_version = f.model_version
    -- a version without reference sessions in the marts has nothing to drift from
    where exists (
        select 1 from reference_sessions as r
        where r.model = f.model and r.model_version = f.model_version
    )

)

select * from final
