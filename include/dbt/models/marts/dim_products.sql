with

products as (

    select * from {{ ref('stg_products') }}

),

compute_booleans as (

    select
        *,
        coalesce(description_vector not in ('', '[]'), false)
            as has_description_vector,
        coalesce(image_vector not in ('', '[]'), false) as has_image_vector

    from products

),

final as (

    select
        ---------- ids
        product_sku_hash,
        -- the SKU's integer key, as int_session_events carries it
        {{ hash_key(['product_sku_hash']) }} as sku_key,
        category_hash,
        top_category_hash,

        ---------- numerics
        price_bucket,

        ---------- booleans
        has_description_vector,
        has_image_vector

    from compute_booleans

)

select * from final
