-- Prints each line of its input with its words in reverse order. A line over 100 words is
-- refused with an error, so one test shows a runtime error verdict.
for line in io.lines() do
  local words = {}
  for word in line:gmatch("%S+") do table.insert(words, 1, word) end
  if #words > 100 then error("too many words: " .. #words) end
  print(table.concat(words, " "))
end
