local names = nil
if #ARGV > 0 then names = ARGV end
return read_hash(KEYS[1], names)
