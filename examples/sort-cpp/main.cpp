// Reads n and n integers, prints them sorted ascending on one line.
#include <algorithm>
#include <iostream>
#include <vector>

int main() {
    std::ios::sync_with_stdio(false);
    size_t n;
    std::cin >> n;
    std::vector<long long> v(n);
    for (auto &x : v) std::cin >> x;
    std::sort(v.begin(), v.end());
    for (size_t i = 0; i < n; i++) std::cout << v[i] << (i + 1 < n ? ' ' : '\n');
}
