-- Completions sent on their own (follows complete_one.lua): the ones a
-- replica had waiting when no admission came by to carry them, or an
-- outcome other replicas must learn at once (a cooldown, a failure).
--
-- KEYS     per group: its marker, then 14 per completion (complete_one.lua)
-- ARGV[1]  JSON: the groups, as complete_groups takes them

complete_groups(cjson.decode(ARGV[1]), 0)
return 1
