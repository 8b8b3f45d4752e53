# Any pair summing to n is accepted: this one is not the answer file's, and one test is
# answered in the wrong order on purpose (the checker says why: WA).
n = int(input())
a = n // 3
print(a, n - a) if n != 10 else print(n - 1, 1)
