{#
    The data interval of a run, and the one incremental predicate every
    incremental model shares.

    The DAG passes vars `interval_start` and `interval_end` (ISO 8601, UTC, end
    exclusive, e.g. 2026-11-25T06:00:00+00:00) and `session_lookback_hours`.
    An incremental run then reads:
      * staging: the raw rows whose event time is in [start, end);
      * intermediate and marts: the sessions with an event in [start, end),
        reading their events from [start - lookback, +inf) only, so the scan
        is bounded by the lookback (DuckDB zonemaps, Snowflake pruning on
        event_ms).
    A session whose events span more than the lookback would be rebuilt from
    a part of its events (int_session_events' test on session_id + event_index
    then fails); sessions end after 30 minutes of inactivity, so the default
    of 24 hours leaves a wide margin.

    Without the vars (dbt run by hand), the interval is [watermark, +inf), the
    watermark being the newest event time already in the model's own table.
#}

{# Epoch milliseconds of an ISO 8601 time (naive means UTC) #}
{% macro skiff_epoch_ms(value) -%}
    {%- set text = value | string | trim -%}
    {%- if text.endswith('Z') -%}
        {%- set text = text[:-1] ~ '+00:00' -%}
    {%- endif -%}
    {%- set parsed = modules.datetime.datetime.fromisoformat(text) -%}
    {%- if parsed.tzinfo is none -%}
        {%- set parsed = parsed.replace(tzinfo=modules.pytz.utc) -%}
    {%- endif -%}
    {{ return((parsed.timestamp() * 1000) | round | int) }}
{%- endmacro %}


{#
    The run's window as SQL expressions over epoch milliseconds:
      start, end        the data interval [start, end); end is none without
                        the vars
      lookback_start    start minus session_lookback_hours
      is_bounded        true when the window comes from the vars (literals)
    `watermark` is the aggregate, over the model's own table, giving its
    newest event time in epoch ms; it is used only without the vars.
#}
{% macro skiff_window(watermark='max(event_ms)') -%}
    {%- set start_var = var('interval_start', none) -%}
    {%- set end_var = var('interval_end', none) -%}
    {%- set lookback_hours = var('session_lookback_hours', 24) | int -%}
    {%- if lookback_hours < 0 -%}
        {{ exceptions.raise_compiler_error(
            "var session_lookback_hours=" ~ lookback_hours
            ~ " must be >= 0") }}
    {%- endif -%}
    {%- set lookback_ms = lookback_hours * 3600 * 1000 -%}

    {%- if start_var and end_var -%}
        {%- set start_ms = skiff_epoch_ms(start_var) -%}
        {%- set end_ms = skiff_epoch_ms(end_var) -%}
        {%- if end_ms <= start_ms -%}
            {{ exceptions.raise_compiler_error(
                "vars interval_start=" ~ start_var ~ " and interval_end="
                ~ end_var ~ ": the end must be after the start") }}
        {%- endif -%}
        {{ return({
            'start': start_ms,
            'end': end_ms,
            'lookback_start': start_ms - lookback_ms,
            'is_bounded': true,
        }) }}
    {%- elif start_var or end_var -%}
        {{ exceptions.raise_compiler_error(
            "pass both vars interval_start and interval_end, or neither "
            ~ "(got interval_start=" ~ start_var
            ~ ", interval_end=" ~ end_var ~ ")") }}
    {%- else -%}
        {%- set start_sql -%}
            (select coalesce({{ watermark }}, 0) from {{ this }})
        {%- endset -%}
        {{ return({
            'start': start_sql,
            'end': none,
            'lookback_start': '(' ~ start_sql ~ ' - ' ~ lookback_ms ~ ')',
            'is_bounded': false,
        }) }}
    {%- endif -%}
{%- endmacro %}


{# `column` in the run's data interval [start, end) #}
{% macro in_interval(column, window) -%}
    {{ column }} >= {{ window.start }}
    {%- if window.end is not none %} and {{ column }} < {{ window.end }}
    {%- endif %}
{%- endmacro %}


{#
    Where-clause of a staging model's source on incremental runs: the raw
    rows whose event time is in the data interval. Nothing on a full build.
#}
{% macro interval_filter(column, watermark='max(event_ms)') -%}
    {%- if is_incremental() -%}
    where {{ in_interval(column, skiff_window(watermark)) }}
    {%- endif -%}
{%- endmacro %}


{#
    Where-clause of a session model's import CTE on incremental runs: the
    events (from the lookback on) of the sessions that have an event in the
    interval in any of `touched_by` (relations with session_id and event_ms).
    Nothing on a full build.
#}
{% macro session_window_filter(touched_by, watermark='max(event_ms)') -%}
    {%- if is_incremental() -%}
    {%- set window = skiff_window(watermark) -%}
    where event_ms >= {{ window.lookback_start }}
        and session_id in (
            {%- for relation in touched_by %}
            select session_id from {{ relation }}
            where {{ in_interval('event_ms', window) }}
            {%- if not loop.last %}
            union
            {%- endif %}
            {%- endfor %}
        )
    {%- endif -%}
{%- endmacro %}


{#
    incremental_predicates for delete+insert: bound the delete on the target
    to the rows the run can replace ('interval': the interval's events;
    'lookback': events from the lookback on), so that it prunes instead of
    scanning the table. Only with the vars (literal bounds); none otherwise.
#}
{% macro window_delete_predicates(scope) -%}
    {%- set window = skiff_window() -%}
    {%- if not window.is_bounded -%}
        {{ return([]) }}
    {%- elif scope == 'interval' -%}
        {{ return([in_interval('event_ms', window) | trim]) }}
    {%- elif scope == 'lookback' -%}
        {{ return(['event_ms >= ' ~ window.lookback_start]) }}
    {%- else -%}
        {{ exceptions.raise_compiler_error(
            "window_delete_predicates: scope must be 'interval' or "
            ~ "'lookback', got " ~ scope) }}
    {%- endif -%}
{%- endmacro %}
