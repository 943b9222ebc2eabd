{#
    Column-level rule: every value of `key` (an integer hash of the column)
    comes with one value of the column: the hash did not map two texts to
    one key. Rows whose key is null are ignored.
#}

{% test one_value_per_key(model, column_name, key) %}

select
    {{ key }},
    count(distinct {{ column_name }}) as count_values
from {{ model }}
where {{ key }} is not null
group by {{ key }}
having count(distinct {{ column_name }}) > 1

{% endtest %}
