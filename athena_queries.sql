-- Athena DDL and analytic queries for the sales pipeline.
--
-- Each block starts with `-- name: <snake_case>` and holds one statement. The runner
-- fills ${database}, ${raw_bucket}, ${processed_bucket} and ${results_bucket}; any
-- other ${...} (Athena's own ${year} / ${month} in storage.location.template) is left
-- as written. The same text runs on Athena and, transpiled by sqlglot, on DuckDB.

-- name: create_database
create database if not exists ${database}

-- name: create_enriched_sales
-- One row per valid transaction, joined to customer demographics (null when unknown).
-- Partition projection computes partitions from year/month: no MSCK REPAIR, ever.
create external table if not exists ${database}.enriched_sales (
    transaction_id string,
    transaction_date date,
    customer_id string,
    product string,
    quantity int,
    unit_price decimal(12, 2),
    region string,
    total_amount decimal(12, 2),
    age_group string,
    membership_tier string,
    signup_date date,
    day int
)
partitioned by (year int, month int)
stored as parquet
location 's3://${processed_bucket}/enriched/'
tblproperties (
    'parquet.compression' = 'SNAPPY',
    'projection.enabled' = 'true',
    'projection.year.type' = 'integer',
    'projection.year.range' = '2000,2099',
    'projection.month.type' = 'integer',
    'projection.month.range' = '1,12',
    'storage.location.template' = 's3://${processed_bucket}/enriched/year=${year}/month=${month}/'
)

-- name: create_sales_summary
-- Revenue per region and product for each month, written by the job.
create external table if not exists ${database}.sales_summary (
    region string,
    product string,
    total_revenue decimal(18, 2),
    transaction_count bigint,
    avg_transaction_value decimal(12, 2)
)
partitioned by (year int, month int)
stored as parquet
location 's3://${processed_bucket}/sales_summary/'
tblproperties (
    'parquet.compression' = 'SNAPPY',
    'projection.enabled' = 'true',
    'projection.year.type' = 'integer',
    'projection.year.range' = '2000,2099',
    'projection.month.type' = 'integer',
    'projection.month.range' = '1,12',
    'storage.location.template' = 's3://${processed_bucket}/sales_summary/year=${year}/month=${month}/'
)

-- name: create_quarantine
-- Every row the job rejected, in every run, with its one reason; one file per run under
-- the run's UTC date. Partition projection computes the dates (the last two years).
create external table if not exists ${database}.quarantine (
    run_id string,
    run_started string,
    source string,
    source_file string,
    reason string,
    detail string,
    record_id string,
    raw_record string,
    raw_bytes binary
)
partitioned by (run_date string)
stored as parquet
location 's3://${processed_bucket}/quarantine/'
tblproperties (
    'parquet.compression' = 'SNAPPY',
    'projection.enabled' = 'true',
    'projection.run_date.type' = 'date',
    'projection.run_date.format' = 'yyyy-MM-dd',
    'projection.run_date.range' = 'NOW-2YEARS,NOW',
    'projection.run_date.interval' = '1',
    'projection.run_date.interval.unit' = 'DAYS',
    'storage.location.template' = 's3://${processed_bucket}/quarantine/run_date=${run_date}/'
)

-- name: revenue_by_region
-- Which regions bring in the most revenue, and how big is their typical sale?
with by_region as (
    select
        region,
        sum(total_amount) as total_revenue,
        count(*) as transaction_count,
        avg(total_amount) as avg_amount
    from enriched_sales
    group by region
)

select
    region,
    total_revenue,
    transaction_count,
    round(avg_amount, 2) as avg_transaction_value
from by_region
order by total_revenue desc, region

-- name: top_products
-- The ten products with the highest revenue.
with by_product as (
    select
        product,
        sum(total_amount) as total_revenue,
        cast(sum(quantity) as bigint) as units_sold,
        count(*) as transaction_count
    from enriched_sales
    group by product
)

select
    product,
    total_revenue,
    units_sold,
    transaction_count
from by_product
order by total_revenue desc, product
limit 10

-- name: monthly_trend
-- Revenue and transactions per calendar month, with the first and last day of the month
-- that has sales (a first month that starts after day 1, or a last one that ends before
-- the month does, holds only part of that month).
with by_month as (
    select
        year,
        month,
        sum(total_amount) as total_revenue,
        count(*) as transaction_count,
        min(day) as first_day,
        max(day) as last_day
    from enriched_sales
    group by year, month
)

select
    year,
    month,
    total_revenue,
    transaction_count,
    first_day,
    last_day
from by_month
order by year, month

-- name: customer_tiers
-- How revenue splits across membership tiers. 'no tier': the customer's record has no
-- tier; 'unknown customer': no customer record matched (age group, tier and signup date
-- all empty, the rule of unknown_customer_share; a record holding only its id reads so).
with tiers as (
    select
        case
            when membership_tier is not null then membership_tier
            when age_group is null and signup_date is null then 'unknown customer'
            else 'no tier'
        end as tier,
        total_amount
    from enriched_sales
),

by_tier as (
    select
        tier as membership_tier,
        sum(total_amount) as total_revenue,
        count(*) as transaction_count
    from tiers
    group by tier
)

select
    membership_tier,
    total_revenue,
    transaction_count,
    round(
        100 * cast(total_revenue as double) / sum(cast(total_revenue as double)) over (), 2
    ) as revenue_share_pct
from by_tier
order by total_revenue desc, membership_tier

-- name: age_group_analysis
-- Spend by customer age group. 'no age group': the customer's record has none;
-- 'unknown customer': no customer record matched (as in customer_tiers).
with ages as (
    select
        case
            when age_group is not null then age_group
            when membership_tier is null and signup_date is null then 'unknown customer'
            else 'no age group'
        end as age,
        total_amount
    from enriched_sales
),

by_age as (
    select
        age as age_group,
        sum(total_amount) as total_revenue,
        count(*) as transaction_count,
        avg(total_amount) as avg_amount
    from ages
    group by age
)

select
    age_group,
    total_revenue,
    transaction_count,
    round(avg_amount, 2) as avg_transaction_value
from by_age
order by age_group

-- name: transaction_distribution
-- Histogram of transaction amounts: 20 bins of equal width on a log scale from the
-- smallest to the largest amount (amounts span $10 to $10,000, so equal-width bins
-- would put almost everything in the first), with the overall mean and exact median
-- repeated on every row.
with amounts as (
    select cast(total_amount as double) as amount
    from enriched_sales
    where total_amount > 0
),

bounds as (
    select
        ln(min(amount)) as log_min,
        (ln(max(amount)) - ln(min(amount))) / 20 as log_width,
        avg(amount) as mean_amount
    from amounts
),

ranked as (
    select
        amount,
        row_number() over (order by amount) as amount_order,
        count(*) over () as total
    from amounts
),

median as (
    select avg(amount) as median_amount
    from ranked
    where amount_order in (floor((total + 1) / 2.0), ceiling((total + 1) / 2.0))
),

binned as (
    select
        coalesce(
            least(cast(floor((ln(a.amount) - b.log_min) / nullif(b.log_width, 0)) as integer), 19),
            0
        ) as bin,
        a.amount
    from amounts as a
    cross join bounds as b
),

bin_counts as (
    select
        bin,
        count(*) as transaction_count
    from binned
    group by bin
),

all_bins as (
    select bin
    from unnest(sequence(0, 19)) as t (bin)
)

select
    round(exp(b.log_min + ab.bin * b.log_width), 2) as bin_lower,
    round(exp(b.log_min + (ab.bin + 1) * b.log_width), 2) as bin_upper,
    coalesce(bc.transaction_count, 0) as transaction_count,
    round(b.mean_amount, 2) as mean_amount,
    round(m.median_amount, 2) as median_amount
from all_bins as ab
cross join bounds as b
cross join median as m
left join bin_counts as bc on ab.bin = bc.bin
where b.log_min is not null
order by ab.bin

-- name: high_value_transactions
-- The 20 largest transactions, who made them, and their share of all revenue.
with overall as (
    select sum(cast(total_amount as double)) as all_revenue
    from enriched_sales
),

ranked as (
    select
        transaction_id,
        transaction_date,
        customer_id,
        coalesce(membership_tier, 'unknown') as membership_tier,
        region,
        product,
        quantity,
        total_amount,
        row_number() over (order by total_amount desc, transaction_id) as amount_rank
    from enriched_sales
)

select
    r.amount_rank,
    r.transaction_id,
    r.transaction_date,
    r.customer_id,
    r.membership_tier,
    r.region,
    r.product,
    r.quantity,
    r.total_amount,
    round(100 * cast(r.total_amount as double) / o.all_revenue, 4) as revenue_share_pct
from ranked as r
cross join overall as o
where r.amount_rank <= 20
order by r.amount_rank

-- name: repeat_customers
-- Do customers come back? Customers with one purchase against those with several.
with per_customer as (
    select
        customer_id,
        count(*) as transaction_count,
        sum(cast(total_amount as double)) as revenue
    from enriched_sales
    where customer_id is not null
    group by customer_id
),

labelled as (
    select
        case when transaction_count > 1 then 'repeat' else 'one_time' end as customer_type,
        transaction_count,
        revenue
    from per_customer
),

by_type as (
    select
        customer_type,
        count(*) as customers,
        cast(sum(transaction_count) as bigint) as transaction_count,
        sum(revenue) as total_revenue
    from labelled
    group by customer_type
)

select
    customer_type,
    customers,
    transaction_count,
    round(total_revenue, 2) as total_revenue,
    round(cast(transaction_count as double) / customers, 2) as transactions_per_customer,
    round(100 * total_revenue / sum(total_revenue) over (), 2) as revenue_share_pct
from by_type
order by customer_type desc

-- name: avg_basket_by_tier
-- Average basket (units and value per transaction) for each membership tier.
with baskets as (
    select
        coalesce(membership_tier, 'unknown') as membership_tier,
        quantity,
        cast(total_amount as double) as amount
    from enriched_sales
)

select
    membership_tier,
    count(*) as transaction_count,
    round(avg(cast(quantity as double)), 2) as avg_units,
    round(avg(amount), 2) as avg_basket_value,
    round(max(amount), 2) as max_basket_value
from baskets
group by membership_tier
order by avg_basket_value desc, membership_tier

-- name: month_over_month_growth
-- How revenue changes from one month to the next (null for the first month).
with by_month as (
    select
        year,
        month,
        sum(cast(total_amount as double)) as revenue
    from enriched_sales
    group by year, month
),

with_previous as (
    select
        year,
        month,
        revenue,
        lag(revenue) over (order by year, month) as previous_revenue
    from by_month
)

select
    year,
    month,
    round(revenue, 2) as total_revenue,
    round(previous_revenue, 2) as previous_revenue,
    round(revenue - previous_revenue, 2) as revenue_change,
    round(100 * (revenue - previous_revenue) / nullif(previous_revenue, 0), 2) as growth_pct
from with_previous
order by year, month

-- name: product_mix_by_region
-- Within each region, each product's share of the region's revenue.
with region_product as (
    select
        region,
        product,
        sum(cast(total_amount as double)) as revenue,
        count(*) as transaction_count
    from enriched_sales
    group by region, product
)

select
    region,
    product,
    round(revenue, 2) as total_revenue,
    transaction_count,
    round(100 * revenue / sum(revenue) over (partition by region), 2) as region_share_pct
from region_product
order by region, total_revenue desc, product

-- name: unknown_customer_share
-- How much of the business comes from customer ids with no demographics record.
with flagged as (
    select
        cast(total_amount as double) as amount,
        case
            when membership_tier is null and age_group is null and signup_date is null then 1
            else 0
        end as is_unknown
    from enriched_sales
)

select
    count(*) as transaction_count,
    cast(sum(is_unknown) as bigint) as unknown_transactions,
    round(100 * cast(sum(is_unknown) as double) / count(*), 2) as unknown_transaction_pct,
    round(sum(amount * is_unknown), 2) as unknown_revenue,
    round(100 * sum(amount * is_unknown) / sum(amount), 2) as unknown_revenue_pct
from flagged

-- name: signup_cohorts
-- Revenue by the year customers signed up (known customers only).
with cohorts as (
    select
        year(signup_date) as signup_year,
        customer_id,
        cast(total_amount as double) as amount
    from enriched_sales
    where signup_date is not null
)

select
    signup_year,
    count(distinct customer_id) as customers,
    count(*) as transaction_count,
    round(sum(amount), 2) as total_revenue,
    round(sum(amount) / count(distinct customer_id), 2) as revenue_per_customer
from cohorts
group by signup_year
order by signup_year

-- name: summary_region_month
-- Monthly revenue per region from the job's pre-aggregated summary table.
with by_region_month as (
    select
        year,
        month,
        region,
        sum(total_revenue) as total_revenue,
        cast(sum(transaction_count) as bigint) as transaction_count
    from sales_summary
    group by year, month, region
)

select
    year,
    month,
    region,
    total_revenue,
    transaction_count
from by_region_month
order by year, month, region

-- name: raw_vs_enriched_counts
-- Rows in the crawled raw sales table against valid rows that reached the lake.
with raw_rows as (
    select count(*) as raw_sales_rows
    from sales_data_csv
),

enriched_rows as (
    select count(*) as enriched_rows
    from enriched_sales
)

select
    r.raw_sales_rows,
    e.enriched_rows,
    r.raw_sales_rows - e.enriched_rows as rows_not_enriched
from raw_rows as r
cross join enriched_rows as e

-- name: customers_by_tier
-- Size of each membership tier in the crawled raw customer table.
with customers as (
    select
        coalesce(membership_tier, 'unknown') as membership_tier,
        customer_id
    from customer_demographics_json
)

select
    membership_tier,
    count(distinct customer_id) as customers
from customers
group by membership_tier
order by customers desc, membership_tier

-- name: quarantine_by_reason
-- Rejected rows per source and reason: in the last run that rejected any (by its start
-- time) and over every run the quarantine holds.
with runs as (
    select
        run_id,
        max(run_started) as run_started
    from quarantine
    group by run_id
),

last_run as (
    select run_id
    from runs
    order by run_started desc, run_id desc
    limit 1
)

select
    q.source,
    q.reason,
    cast(sum(case when q.run_id = l.run_id then 1 else 0 end) as bigint) as last_run_rows,
    count(*) as all_runs_rows,
    count(distinct q.run_id) as runs
from quarantine as q
cross join last_run as l
group by q.source, q.reason
order by last_run_rows desc, all_runs_rows desc, q.source, q.reason

-- name: quarantine_rows
-- The rejected rows themselves, the newest run first (the first 1,000): reason, detail,
-- source file and the raw record as the job read it.
select
    run_id,
    source,
    reason,
    detail,
    source_file,
    record_id,
    raw_record
from quarantine
order by run_started desc, source, reason, source_file, raw_record
limit 1000
