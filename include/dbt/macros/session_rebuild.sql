{#
    incremental_strategy='session_rebuild': delete+insert by unique_key (the
    session id), for models whose rows carry a time that a rebuilt session's
    row can only keep or move earlier: `event_ms` (the default) on event rows,
    the session's start on session rows (config `session_time`). A run's new
    rows are whole sessions, rebuilt from all their events
    (macros/skiff_window.sql); their old rows are deleted first. The delete is
    bounded to `session_time` >= its earliest value among the new rows, which
    is correct (a session's old rows are among its rebuilt events, and a
    rebuilt session starts no later than before, so none is earlier) and lets
    the delete prune the target's row groups (DuckDB pushes the subquery's
    value into the scan) instead of reading every session id. The intermediate
    models write their rows in that time's order (`order by`), so a full
    refresh's row groups are ranges of it.

    It is dbt's delete+insert with that predicate added: a bound computed from
    the data at run time, which incremental_predicates (rendered when the
    project is parsed) cannot express.
#}
{% macro get_incremental_session_rebuild_sql(arg_dict) %}
    {%- set time_column = config.get('session_time', 'event_ms') -%}
    {%- set bound -%}
        {{ time_column }} >= (select min({{ time_column }}) from {{ arg_dict['temp_relation'] }})
    {%- endset -%}
    {%- set args = {} -%}
    {%- do args.update(arg_dict) -%}
    {%- do args.update({
        'incremental_predicates': (arg_dict.get('incremental_predicates') or []) + [bound],
    }) -%}
    {{ return(get_incremental_delete_insert_sql(args)) }}
{% endmacro %}
