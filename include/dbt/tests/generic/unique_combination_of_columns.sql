{# Model-level rule: no two rows share their `combination_of_columns`. #}

{% test unique_combination_of_columns(model, combination_of_columns) %}

{%- set columns_csv = combination_of_columns | join(', ') %}

select
    {{ columns_csv }},
    count(*) as count_rows
from {{ model }}
group by {{ columns_csv }}
having count(*) > 1

{% endtest %}
