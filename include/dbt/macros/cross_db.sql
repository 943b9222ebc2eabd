{#
    SQL that differs between DuckDB and Snowflake, one dispatched macro per job
    (the shape of jaffle-shop's cents_to_dollars): models call the macro and
    compile on either warehouse.
#}

{# epoch milliseconds (bigint) -> timestamp without time zone, in UTC #}
{% macro epoch_ms_to_timestamp(column_name) -%}
    {{ return(adapter.dispatch('epoch_ms_to_timestamp')(column_name)) }}
{%- endmacro %}

{% macro default__epoch_ms_to_timestamp(column_name) -%}
    cast(to_timestamp({{ column_name }} / 1000.0) as timestamp)
{%- endmacro %}

{% macro duckdb__epoch_ms_to_timestamp(column_name) -%}
    epoch_ms({{ column_name }})
{%- endmacro %}

{% macro snowflake__epoch_ms_to_timestamp(column_name) -%}
    to_timestamp_ntz({{ column_name }}, 3)
{%- endmacro %}


{# timestamp without time zone (UTC) -> epoch milliseconds (bigint) #}
{% macro timestamp_to_epoch_ms(column_name) -%}
    {{ return(adapter.dispatch('timestamp_to_epoch_ms')(column_name)) }}
{%- endmacro %}

{% macro default__timestamp_to_epoch_ms(column_name) -%}
    cast(extract(epoch from {{ column_name }}) * 1000 as bigint)
{%- endmacro %}

{% macro duckdb__timestamp_to_epoch_ms(column_name) -%}
    epoch_ms({{ column_name }})
{%- endmacro %}

{% macro snowflake__timestamp_to_epoch_ms(column_name) -%}
    date_part(epoch_millisecond, {{ column_name }})
{%- endmacro %}


{#
    A 63-bit integer hash of several columns (nulls included), a BIGINT: the
    key of a row that has no natural id (a raw event). An integer sorts,
    compares and stores in a fraction of the time of a 32-character md5 text:
    at 36M events that was most of the cost of the keys. 63 bits make a
    collision between two events of the same session, the only place the key
    is compared, negligible (about 1 in 10^16 for a 300-event session); the
    tests check the key is unique within each session. Sessions and SKUs get
    one too (session_key, sku_key in stg_browsing_events), so the window and
    the aggregates sort and group integers: there a collision would merge two
    sessions (about 1e-6 likely at 5M sessions), which int_session_events'
    one_value_per_key tests catch on a whole-table test.
    The hash is the warehouse's own (DuckDB hash(), Snowflake HASH()): the same
    row gets the same key on one warehouse, not across warehouses or DuckDB
    versions; a model rebuilt after a DuckDB upgrade gets new keys, which only
    order events logged in the same millisecond.
#}
{% macro hash_key(column_names) -%}
    {{ return(adapter.dispatch('hash_key')(column_names)) }}
{%- endmacro %}

{% macro default__hash_key(column_names) -%}
    {{ exceptions.raise_compiler_error(
        "hash_key: no 64-bit hash for adapter " ~ adapter.type()
        ~ " (Skiff supports duckdb and snowflake)") }}
{%- endmacro %}

{# hash() is a UBIGINT: the top bit dropped, it fits a BIGINT #}
{% macro duckdb__hash_key(column_names) -%}
    cast(hash({{ column_names | join(', ') }}) >> 1 as bigint)
{%- endmacro %}

{# HASH() is a signed 64-bit NUMBER(19, 0); shifted as on DuckDB (fakesnow runs it there) #}
{% macro snowflake__hash_key(column_names) -%}
    cast(bitshiftright(hash({{ column_names | join(', ') }}), 1) as bigint)
{%- endmacro %}


{#
    Aggregate: the values of `expression` as a list ordered by `order_by`
    (DuckDB LIST, Snowflake ARRAY). Callers pass non-null values only: the
    warehouses disagree on whether nulls are kept.
#}
{% macro ordered_list(expression, order_by) -%}
    {{ return(adapter.dispatch('ordered_list')(expression, order_by)) }}
{%- endmacro %}

{% macro default__ordered_list(expression, order_by) -%}
    array_agg({{ expression }} order by {{ order_by }})
{%- endmacro %}

{#
    DuckDB: the group's (order, value) pairs collected unordered, then each small
    list sorted on its own, instead of LIST(... ORDER BY ...), whose ordered
    aggregate buffers and sorts every group's rows in one sort: int_sessions (two
    lists over 36M events, 5M sessions) took 0.62x the time on a 6M-event slice
    (docs/performance.md). `order_by` is one expression, unique in the group
    (a tie would sort on the value).
#}
{% macro duckdb__ordered_list(expression, order_by) -%}
    list_transform(
        list_sort(list(struct_pack(k := {{ order_by }}, v := {{ expression }}))),
        lambda pair: pair.v
    )
{%- endmacro %}

{% macro snowflake__ordered_list(expression, order_by) -%}
    array_agg({{ expression }}) within group (order by {{ order_by }})
{%- endmacro %}


{#
    Aggregate: ordered_list for an expression with a few known text values,
    `values` (a list of strings). DuckDB: each row's position and the value's
    index in `values` packed in one integer, the integers listed and sorted,
    then read back as values: a list of integers sorts in a fraction of the
    time of a list of (order, text) pairs (int_sessions' statement at 36M
    events took 0.6x the time with it, docs/performance.md).
    `order_by` is one non-negative integer expression, unique in the group.
    A null, or a value outside `values` (bad data the validation reports),
    stays in its place as a null.
#}
{% macro ordered_list_of(expression, values, order_by) -%}
    {{ return(adapter.dispatch('ordered_list_of')(expression, values, order_by)) }}
{%- endmacro %}

{% macro default__ordered_list_of(expression, values, order_by) -%}
    {{ ordered_list(expression, order_by) }}
{%- endmacro %}

{% macro duckdb__ordered_list_of(expression, values, order_by) -%}
    {%- set slots = (values | length) + 1 -%}
    list_transform(
        list_sort(list(
            {{ order_by }} * {{ slots }}
            + case {{ expression }}
                {%- for value in values %}
                when '{{ value }}' then {{ loop.index0 }}
                {%- endfor %}
                else {{ slots - 1 }}
            end
        )),
        lambda packed: [
            {%- for value in values %}'{{ value }}', {% endfor -%} null
        ][packed % {{ slots }} + 1]
    )
{%- endmacro %}


{#
    Aggregate: the number of distinct non-null values of `expression`. DuckDB
    answers count(distinct) beside other aggregates by materialising the
    grouped rows a second time and joining (at 36M events, 40 s of CPU in
    int_sessions); the length of the group's list of unique values does not.
#}
{% macro count_distinct(expression) -%}
    {{ return(adapter.dispatch('count_distinct')(expression)) }}
{%- endmacro %}

{% macro default__count_distinct(expression) -%}
    count(distinct {{ expression }})
{%- endmacro %}

{% macro duckdb__count_distinct(expression) -%}
    list_unique(list({{ expression }}))
{%- endmacro %}


{#
    Window function: the previous non-null value of `expression` (the caller
    adds `over (...)`). DuckDB writes IGNORE NULLS inside the call, Snowflake
    after it.
#}
{% macro lag_ignore_nulls(expression) -%}
    {{ return(adapter.dispatch('lag_ignore_nulls')(expression)) }}
{%- endmacro %}

{% macro default__lag_ignore_nulls(expression) -%}
    lag({{ expression }}) ignore nulls
{%- endmacro %}

{% macro duckdb__lag_ignore_nulls(expression) -%}
    lag({{ expression }} ignore nulls)
{%- endmacro %}


{# An empty list, of the type ordered_list returns #}
{% macro empty_list() -%}
    {{ return(adapter.dispatch('empty_list')()) }}
{%- endmacro %}

{% macro default__empty_list() -%}
    array[]
{%- endmacro %}

{% macro duckdb__empty_list() -%}
    []
{%- endmacro %}

{% macro snowflake__empty_list() -%}
    array_construct()
{%- endmacro %}


{# Number of elements of a list kept as text, "['a', 'b']" (0 when null) #}
{% macro text_list_length(column_name) -%}
    case
        when {{ column_name }} is null then 0
        when trim({{ column_name }}) in ('', '[]') then 0
        else
            length({{ column_name }})
            - length(replace({{ column_name }}, ',', ''))
            + 1
    end
{%- endmacro %}
