with

source as (

    select * from {{ source('raw', 'sku_to_content') }}

),

renamed as (

    select

        ---------- ids
        product_sku_hash,
        nullif(category_hash, '') as category_hash,
        nullif(split_part(category_hash, '/', 1), '') as top_category_hash,

        ---------- numerics
        cast(price_bucket as integer) as price_bucket,

        ---------- vectors, kept as the source's text (parsed only by training)
        nullif(description_vector, '') as description_vector,
        nullif(image_vector, '') as image_vector,

        ---------- lineage
        batch_id,
        ingested_at

    from source

),

-- a SKU may be appended by several catalogue loads: the latest one wins
latest as (

    select * from renamed
    qualify
        row_number() over (
            partition by product_sku_hash
            order by
                ingested_at desc,
                batch_id desc,
                category_hash asc,
                price_bucket asc
        ) = 1

)

select * from latest
