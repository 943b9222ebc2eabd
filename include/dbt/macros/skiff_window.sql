{#
    The data interval of a run, and the one incremental filter every
    incremental model shares: rebuild the sessions whose events ARRIVED in the
    interval, from all their events.

    The interval [start, end) is ISO 8601, UTC, end exclusive (e.g.
    2026-11-25T06:00:00+00:00), from the vars `interval_start` and
    `interval_end` or, without them, the environment variables
    SKIFF_DBT_INTERVAL_START and SKIFF_DBT_INTERVAL_END. The DAG sets the
    environment: it changes every hour, and a change of --vars makes dbt parse
    the whole project again (it keys its partial parse on the vars), while an
    environment variable read only when a model runs (never at parse time:
    these macros run on incremental runs only) is no part of that key.
    `session_lookback_hours` stays a var (the same value every hour).
    An incremental run then:
      * finds the sessions touched by the interval: those with a raw row whose
        arrival_ts_ms is in [start, end) (the ingest appends, per interval, the
        files whose first event arrived in it; an event may arrive hours after
        it happened, or out of order, or twice). A row arriving in [start, end)
        sits in a file whose first arrival is at or before its own, so before
        end: this run's ingest or an earlier one appended it (a file's later
        rows may be appended one run early, never late: skiff.data.ingest);
      * rebuilds them from all their events: the events of those sessions
        since the earliest event time among the arrived rows, minus
        session_lookback_hours (a session's events lie within it of each
        other: sessions end after 30 minutes of inactivity, so the default
        of 24 hours leaves a wide margin), whatever interval they arrived in;
      * replaces their rows (delete+insert by session, the delete bounded by
        the rebuilt rows' earliest event time: macros/session_rebuild.sql).
    So hourly runs end where one full refresh of the same raw log does, late
    and repeated arrivals included.

    Cost stays what the interval brings, not what the log holds (DuckDB: no
    index is used; zonemaps, the min/max of each column per row group, prune):
      * the raw log is appended interval by interval, so a literal bound on
        arrival_ts_ms prunes the scan for the touched sessions to the
        interval's row groups;
      * the event-time bound is a literal too, queried once when the model
        runs (rebuild_since_ms): with it as a scalar subquery, the marts'
        reads of int_sessions took ~0.4 s at 36M events, against 35 ms with
        the literal, which DuckDB prunes row groups on; the session_key
        semi-join adds a bloom filter on top;
      * the delete prunes on the target's session time
        (macros/session_rebuild.sql).
    On Snowflake the same predicates prune micro-partitions.

    Without an interval (dbt run by hand) it is [watermark, +inf): the
    arrivals at or after the newest event time already in the model's own
    table (`watermark`). Every row that arrived after the last run qualifies
    (an event arrives after it happens), plus a few already processed, whose
    sessions are rebuilt to the same rows. Rows appended before arrival_ts_ms
    existed have it null: they were built when they were appended.
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
      lookback_ms       session_lookback_hours in milliseconds
      is_bounded        true when the window comes from an interval (literals)
    `watermark` is the aggregate, over the model's own table, giving its
    newest event time in epoch ms; it is used only without an interval.
#}
{% macro skiff_window(watermark='max(event_ms)') -%}
    {%- set start_var = var('interval_start', none)
        or env_var('SKIFF_DBT_INTERVAL_START', '') or none -%}
    {%- set end_var = var('interval_end', none)
        or env_var('SKIFF_DBT_INTERVAL_END', '') or none -%}
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
                "interval_start=" ~ start_var ~ " and interval_end="
                ~ end_var ~ ": the end must be after the start") }}
        {%- endif -%}
        {{ return({
            'start': start_ms,
            'end': end_ms,
            'lookback_ms': lookback_ms,
            'is_bounded': true,
        }) }}
    {%- elif start_var or end_var -%}
        {{ exceptions.raise_compiler_error(
            "pass both interval_start and interval_end (vars, or "
            ~ "SKIFF_DBT_INTERVAL_START and SKIFF_DBT_INTERVAL_END), or neither "
            ~ "(got interval_start=" ~ start_var
            ~ ", interval_end=" ~ end_var ~ ")") }}
    {%- else -%}
        {%- set start_sql -%}
            (select coalesce({{ watermark }}, 0) from {{ this }})
        {%- endset -%}
        {{ return({
            'start': start_sql,
            'end': none,
            'lookback_ms': lookback_ms,
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
    `touched_by` below are the staging models (stg_browsing_events,
    stg_search_events): relations with session_id, session_key, event_ms and
    arrival_ts_ms.
#}

{#
    SQL of the sessions with a row of `touched_by` arrived in the window, by
    `key`: session_key for the models (session_window_filter), or the column
    a tested model names its sessions by (macros/test_window.sql)
#}
{% macro touched_sessions(touched_by, window, key='session_id') -%}
    {%- for relation in touched_by %}
    select {{ key }} from {{ relation }}
    where {{ in_interval('arrival_ts_ms', window) }}
    {%- if not loop.last %}
    union
    {%- endif %}
    {%- endfor %}
{%- endmacro %}


{#
    SQL of the earliest event time (epoch ms) the events of a rebuilt session
    are read from: the earliest event time among the window's arrivals in
    `touched_by`, minus the lookback.
#}
{% macro rebuild_since(touched_by, window) -%}
    (
        select coalesce(min(arrived_ms), {{ window.start }})
            - {{ window.lookback_ms }}
        from (
            {%- for relation in touched_by %}
            select event_ms as arrived_ms from {{ relation }}
            where {{ in_interval('arrival_ts_ms', window) }}
            {%- if not loop.last %}
            union all
            {%- endif %}
            {%- endfor %}
        ) as arrivals
    )
{%- endmacro %}


{#
    rebuild_since as a number, queried when the node runs: DuckDB prunes a
    table's row groups on a literal bound, not on a scalar subquery (which
    became a nested-loop join over the whole table). At parse time (no
    database) the subquery's SQL stands in; nothing runs it.
#}
{% macro rebuild_since_ms(touched_by, window) -%}
    {%- if not execute -%}
        {{ return(rebuild_since(touched_by, window)) }}
    {%- endif -%}
    {%- set since = run_query('select ' ~ rebuild_since(touched_by, window)) -%}
    {{ return(since.columns[0].values()[0] | int) }}
{%- endmacro %}


{#
    Where-clause of a session model's import CTE of events on incremental
    runs: the events (event_ms, session_key) of the sessions touched by the
    interval, since the earliest event time among the interval's arrivals
    minus the lookback. Nothing on a full build.
#}
{% macro session_window_filter(touched_by, watermark='max(event_ms)') -%}
    {%- if is_incremental() -%}
    {%- set window = skiff_window(watermark) -%}
    where event_ms >= {{ rebuild_since_ms(touched_by, window) }}
        and session_key in ({{ touched_sessions(touched_by, window, 'session_key') }}
        )
    {%- endif -%}
{%- endmacro %}
