# Binary search for the secret in [1, 10**9], one guess per line, flushing each: it wins
# every game within 30 queries; the last test allows only 10, so that game is lost (WA).
lo, hi = 1, 10**9
while True:
    guess = (lo + hi) // 2
    print(guess, flush=True)
    answer = input()
    if answer == "=":
        break
    if answer == "<":
        hi = guess - 1
    else:
        lo = guess + 1
