// Build-time probe: compiled with the judge's usual flags, its ldd list is exactly the set of
// libraries the FROM-scratch run image ships, and running it there proves the set is complete.
#include <algorithm>
#include <cmath>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

int main()
{
    std::vector<double> v{3.0, 1.0, 2.0};
    std::sort(v.begin(), v.end());
    try {
        throw std::runtime_error("unwind");  // exercises libgcc_s
    } catch (const std::exception &e) {
        std::cout << "probe " << std::string(e.what()) << ' ' << std::sqrt(v.back() + 6.0) << '\n';
    }
    return 0;
}
