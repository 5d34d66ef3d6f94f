-- Per-transaction scratch tables for one micro-batch (dropped at commit).
CREATE TEMP TABLE tmp_region_hour (region text, hour_start bigint, trips bigint) ON COMMIT DROP;
CREATE TEMP TABLE tmp_datasource_day (datasource text, day integer, trips bigint) ON COMMIT DROP;
CREATE TEMP TABLE tmp_similar (similar_key bigint, trips bigint) ON COMMIT DROP;
CREATE TEMP TABLE tmp_area_week_cells (cx integer, cy integer, week_start integer, trips bigint,
    s1 smallint, s2 smallint, s3 smallint, s4 smallint,
    s5 smallint, s6 smallint, s7 smallint, s8 smallint,
    n1 integer, n2 integer, n3 integer, n4 integer, n5 integer, n6 integer, n7 integer, n8 integer,
    fine integer[]) ON COMMIT DROP;
CREATE TEMP TABLE tmp_region_datasource (region text, datasource text, trips bigint,
                                         latest bigint) ON COMMIT DROP;
