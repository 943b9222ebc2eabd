{#
    Model-level rule: every row satisfies `expression` (dbt_utils'
    expression_is_true, kept here because the project installs no packages).
#}

{% test expression_is_true(model, expression) %}

select * from {{ model }}
where not ({{ expression }})

{% endtest %}
