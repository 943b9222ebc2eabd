{#
    The rows the data tests of an hourly run read: those of the sessions the
    run rebuilt, not the whole table.

    An hourly run rebuilds the sessions its interval touched (macros/skiff_window.sql)
    and leaves every other row as the runs before it wrote and tested it; at
    the real dataset's size (36M events) testing whole tables every hour took
    most of the build. So, with an interval and without --full-refresh, a test
    of a model whose rows belong to sessions reads the rows of the sessions
    touched by the interval (browsing or search arrivals), since the earliest
    event time a rebuilt session is read from: the rows each model rebuilt,
    and a few more. A full refresh, or a run without an interval, tests whole
    tables.

    Which models: those whose `meta` names their session time,
    `session_time_ms` (a column in epoch ms) or `session_time_at` (a
    timestamp); the others (products) are always tested whole. `meta`
    `session_key` names the column that says the session, session_id unless
    the model keeps only the integer key (int_session_events: session_key). The tests get
    `where: __rebuilt_sessions__` from dbt_project.yml, and this override of
    dbt's get_where_subquery (the placeholder pattern dbt's docs give for
    `where` configs that need a macro) turns it into the filter when a test
    runs. It reads the interval at run time only (`execute`): the project's
    parse, which dbt keeps between runs, does not depend on it.
#}

{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where and '__rebuilt_sessions__' in where -%}
        {%- set where = where | replace('__rebuilt_sessions__', rebuilt_sessions_filter()) -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) dbt_subquery
        {%- endset -%}
        {{ return(filtered) }}
    {%- else -%}
        {{ return(relation) }}
    {%- endif -%}
{%- endmacro %}


{# The condition on the tested model's rows (`model` is the test): `true` for all #}
{% macro rebuilt_sessions_filter() -%}
    {%- if not execute or flags.FULL_REFRESH or not model.attached_node -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set meta = graph.nodes[model.attached_node].config.meta or {} -%}
    {%- if not (meta.session_time_ms or meta.session_time_at) -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set window = skiff_window() -%}
    {%- if not window.is_bounded -%}
        {{ return('true') }}
    {%- endif -%}
    {%- set touched_by = [] -%}
    {%- for name in ['stg_browsing_events', 'stg_search_events'] -%}
        {%- set node = graph.nodes['model.' ~ project_name ~ '.' ~ name] -%}
        {%- set relation = adapter.get_relation(
            database=node.database, schema=node.schema, identifier=node.alias) -%}
        {#- a first build: the other staging view may not exist yet (the test waits for its
            own model only), and the whole table is the run's rows -#}
        {%- if relation is none -%}
            {{ return('true') }}
        {%- endif -%}
        {%- do touched_by.append(relation) -%}
    {%- endfor -%}
    {#- the bound as a literal, queried once per test, as the models do (a test on
        int_session_events read its 292 row groups with the subquery, 1.5 s at 36M events,
        instead of 2) -#}
    {%- set since_ms = rebuild_since_ms(touched_by, window) -%}
    {%- if meta.session_time_ms -%}
        {%- set since = meta.session_time_ms ~ ' >= ' ~ since_ms -%}
    {%- else -%}
        {%- set since = meta.session_time_at ~ ' >= ' ~ epoch_ms_to_timestamp(since_ms) -%}
    {%- endif -%}
    {%- set key = meta.session_key or 'session_id' -%}
    {%- set filter -%}
        {{ since }} and {{ key }} in ({{ touched_sessions(touched_by, window, key) }}
        )
    {%- endset -%}
    {{ return(filter) }}
{%- endmacro %}
