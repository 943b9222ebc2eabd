{#
    The monitoring models' window and the SQL they need on both warehouses
    (docs/monitoring.md).

    A monitoring mart is incremental by hour: a run rebuilds the hours of
    served_at of the predictions that ARRIVED in its data interval (shifted
    back by `lag_hours`), from all the predictions of those hours, so a
    prediction arriving after its hour ended (the prediction log posts every
    second, the collector rolls its files every minute) still counts in its
    hour. Without the interval vars (dbt by hand), the hours of what arrived
    since the newest hour already built.
#}
{% macro monitoring_hours(lag_hours=0) -%}
    {%- if is_incremental() -%}
    {%- set window = skiff_window('max(' ~ timestamp_to_epoch_ms('hour_start') ~ ')') -%}
    {%- set lag_ms = lag_hours * 3600 * 1000 -%}
    hour_start in (
        select distinct hour_start from {{ ref('stg_predictions') }}
        where arrival_ts_ms >= {{ window.start }} - {{ lag_ms }}
        {%- if window.end is not none %}
            and arrival_ts_ms < {{ window.end }} - {{ lag_ms }}
        {%- endif %}
    )
    {%- else -%}
    1 = 1
    {%- endif -%}
{%- endmacro %}


{# The p-quantile (0..1) of `expression`, interpolated, as an aggregate #}
{% macro percentile(expression, p) -%}
    {{ return(adapter.dispatch('percentile')(expression, p)) }}
{%- endmacro %}

{% macro default__percentile(expression, p) -%}
    percentile_cont({{ p }}) within group (order by {{ expression }})
{%- endmacro %}

{% macro duckdb__percentile(expression, p) -%}
    quantile_cont({{ expression }}, {{ p }})
{%- endmacro %}


{# The items of a list kept as text, "['a', 'b']" (tokens: no quote, comma or space in them) #}
{% macro text_list_items(column_name) -%}
    {{ return(adapter.dispatch('text_list_items')(column_name)) }}
{%- endmacro %}

{% macro default__text_list_items(column_name) -%}
    string_split(regexp_replace({{ column_name }}, '[\[\]'' ]', '', 'g'), ',')
{%- endmacro %}

{% macro snowflake__text_list_items(column_name) -%}
    split(regexp_replace({{ column_name }}, '[\\[\\]'' ]', ''), ',')
{%- endmacro %}


{#
    One row per item of a list column: `select <columns>, <item> as item from
    <relation>` (DuckDB unnest, Snowflake lateral flatten). Rows with an empty
    or null list give none.
#}
{% macro explode_items(relation, list_expression, columns) -%}
    {{ return(adapter.dispatch('explode_items')(relation, list_expression, columns)) }}
{%- endmacro %}

{% macro default__explode_items(relation, list_expression, columns) -%}
    select {{ columns | join(', ') }}, unnest({{ list_expression }}) as item
    from {{ relation }}
{%- endmacro %}

{% macro snowflake__explode_items(relation, list_expression, columns) -%}
    select {{ columns | join(', ') }}, flattened.value::varchar as item
    from {{ relation }}, lateral flatten(input => {{ list_expression }}) as flattened
{%- endmacro %}


{#
    Population stability index of `current` against `reference`: relations
    with (<group columns>, bucket, n). Per group: sum over the buckets of
    either of (c - r) * ln(c / r), c and r the bucket's shares, floored at
    0.0001 so a bucket one side lacks counts without dividing by zero.
    Reference rows are joined on `reference_key` only (the reference of a
    model version). Returns a select of <group columns>, psi.
#}
{% macro psi_sql(current, reference, group_columns, reference_key) -%}
    with current_shares as (
        select {{ group_columns | join(', ') }}, bucket,
            n * 1.0 / sum(n) over (partition by {{ group_columns | join(', ') }}) as share
        from {{ current }}
    ),
    reference_shares as (
        select {{ reference_key | join(', ') }}, bucket,
            n * 1.0 / sum(n) over (partition by {{ reference_key | join(', ') }}) as share
        from {{ reference }}
    ),
    groups as (
        select distinct {{ group_columns | join(', ') }} from current_shares
    ),
    buckets as (
        select {% for c in group_columns %}g.{{ c }}, {% endfor %}c.bucket
        from groups as g
        inner join current_shares as c on
            {% for c in group_columns %}c.{{ c }} = g.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %}
        union
        select {% for c in group_columns %}g.{{ c }}, {% endfor %}r.bucket
        from groups as g
        inner join reference_shares as r on
            {% for c in reference_key %}r.{{ c }} = g.{{ c }}{% if not loop.last %} and {% endif %}{% endfor %}
    )
    select
        {% for c in group_columns %}b.{{ c }}, {% endfor %}
        sum(
            (greatest(coalesce(c.share, 0), 0.0001) - greatest(coalesce(r.share, 0), 0.0001))
            * ln(greatest(coalesce(c.share, 0), 0.0001) / greatest(coalesce(r.share, 0), 0.0001))
        ) as psi
    from buckets as b
    left join current_shares as c on
        {% for col in group_columns %}c.{{ col }} = b.{{ col }} and {% endfor %}c.bucket = b.bucket
    left join reference_shares as r on
        {% for col in reference_key %}r.{{ col }} = b.{{ col }} and {% endfor %}r.bucket = b.bucket
    group by {% for c in group_columns %}b.{{ c }}{% if not loop.last %}, {% endif %}{% endfor %}
{%- endmacro %}


{# A SKU's popularity bucket from its rank (1 = most viewed); null for no rank #}
{% macro _rank_bucket(column_name) -%}
    case
        when {{ column_name }} <= 10 then 'top_10'
        when {{ column_name }} <= 100 then 'top_100'
        when {{ column_name }} <= 1000 then 'top_1000'
        when {{ column_name }} is not null then 'tail'
    end
{%- endmacro %}
