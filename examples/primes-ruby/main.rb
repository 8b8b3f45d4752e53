# For each n read, prints how many primes there are up to n, with the standard library's Prime
# (a bundled gem: RubyGems is on). An off-by-one for n = 2 makes one test a wrong answer.
require "prime"

$stdin.read.split.map(&:to_i).each do |n|
  count = Prime.each(n).count
  count -= 1 if n == 2 # the bug
  puts count
end
