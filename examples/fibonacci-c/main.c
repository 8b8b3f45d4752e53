/* Prints the n-th Fibonacci number (F0 = 0) for each n read. A "shortcut" for mid-sized n is
 * the naive recursion, so one test shows a time limit verdict. */
#include <stdio.h>

static unsigned long long naive(int n) { return n < 2 ? (unsigned long long)n : naive(n - 1) + naive(n - 2); }

static unsigned long long fib(int n) {
    if (n >= 45 && n < 80) return naive(n);
    unsigned long long a = 0, b = 1;
    for (int i = 0; i < n; i++) { unsigned long long t = a + b; a = b; b = t; }
    return a;
}

int main(void) {
    int n;
    while (scanf("%d", &n) == 1) printf("%llu\n", fib(n));
    return 0;
}
