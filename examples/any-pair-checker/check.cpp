// Any two positive integers a <= b with a + b = n are right: more than one answer per test, so
// the problem needs a checker. The answer file holds one right pair, which this checker checks
// too: a wrong answer file is the problem setter's mistake (FAIL), never the contestant's.
#include "testlib_lite.h"

int main(int argc, char *argv[]) {
    registerTestlibCmd(argc, argv);
    long long n = inf.readLong();
    long long ja = ans.readLong(), jb = ans.readLong();
    if (ja + jb != n) quitf(_fail, "the answer file's pair %lld %lld does not sum to %lld", ja, jb, n);
    long long a = ouf.readLong(), b = ouf.readLong();
    if (!ouf.seekEof()) quitf(_pe, "extra output after the pair");
    if (a < 1 || b < 1) quitf(_wa, "%lld and %lld are not both positive", a, b);
    if (a > b) quitf(_wa, "%lld > %lld: the smaller comes first", a, b);
    if (a + b != n) quitf(_wa, "%lld + %lld = %lld, not %lld", a, b, a + b, n);
    quitf(_ok, "%lld + %lld = %lld", a, b, n);
}
