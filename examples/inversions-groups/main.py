# Counts inversions by looking at every pair: right, but quadratic. It earns the small group's
# 30 points and runs out of time on the large group's tests (worth 70).
n = int(input())
a = list(map(int, input().split()))
print(sum(1 for i in range(n) for j in range(i + 1, n) if a[i] > a[j]))
