{#
    Use a model's custom schema as it is (`staging`, `intermediate`, `marts`),
    not dbt's default `<target schema>_<custom schema>`: the marts are read by
    Great Expectations and the training flows under a fixed name.
#}

{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
