-- The ISO weeks (Monday starts, UTC) a weekly average is taken over: from the week of
-- %(from)s (default: the earliest trip) to the week of %(to)s (default: the latest trip).
SELECT date_trunc('week', coalesce(%(from)s::date, min(day)))::date AS first_week,
       date_trunc('week', coalesce(%(to)s::date, max(day)))::date   AS last_week
FROM datasource_day_counts
