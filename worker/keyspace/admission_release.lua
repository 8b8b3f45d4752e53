-- KEYS: the runs hash, their deadlines, the fleet's total. ARGV: run, the tenant key prefix.
forget(ARGV[1], ARGV[2])
return 1
