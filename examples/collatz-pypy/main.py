# For each n read, prints the start at most n whose Collatz sequence is the longest, and how
# many steps it takes: a plain loop over a million starts, which PyPy's JIT makes fast. The
# range stops one short of n (the bug), so a test whose answer is n itself is a wrong answer.
import sys


def longest(n):
    steps = [0] * (n + 1)
    best, best_steps = 1, 0
    for start in range(2, n):  # the bug: range(2, n + 1)
        x, count = start, 0
        while x >= start:
            x = x // 2 if x % 2 == 0 else 3 * x + 1
            count += 1
        count += steps[x]
        steps[start] = count
        if count > best_steps:
            best, best_steps = start, count
    return best, best_steps


for token in sys.stdin.read().split():
    print(*longest(int(token)))
