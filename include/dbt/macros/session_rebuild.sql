{#
    incremental_strategy='session_rebuild': delete+insert by unique_key (the
    session id), for models whose rows carry event_ms. A run's new rows are
    whole sessions, rebuilt from all their events (macros/skiff_window.sql);
    their old rows are deleted first. The delete is bounded to
    event_ms >= the earliest event_ms of the new rows, which is correct (a
    session's old rows are among its rebuilt events, so none is earlier) and
    lets the delete prune the target's row groups (DuckDB pushes the
    subquery's value into the scan) instead of reading every session id.

    It is dbt's delete+insert with that predicate added: a bound computed from
    the data at run time, which incremental_predicates (rendered when the
    project is parsed) cannot express.
#}
{% macro get_incremental_session_rebuild_sql(arg_dict) %}
    {%- set bound -%}
        event_ms >= (select min(event_ms) from {{ arg_dict['temp_relation'] }})
    {%- endset -%}
    {%- set args = {} -%}
    {%- do args.update(arg_dict) -%}
    {%- do args.update({
        'incremental_predicates': (arg_dict.get('incremental_predicates') or []) + [bound],
    }) -%}
    {{ return(get_incremental_delete_insert_sql(args)) }}
{% endmacro %}
