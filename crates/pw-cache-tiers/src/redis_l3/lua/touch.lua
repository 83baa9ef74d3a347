for i = 4, #ARGV, 3 do touch(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[3]) end
return 0
