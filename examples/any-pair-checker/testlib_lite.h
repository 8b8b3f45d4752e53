// A small checker library in the style of testlib.h (https://github.com/MikeMirzayanov/testlib):
// the same entry point, streams and exit codes, so a checker written against it reads like a
// testlib checker and the fleet judges both alike. Checkers for real problems ship their own
// copy of the real testlib.h instead, as one of the checker's files.
//
//   registerTestlibCmd(argc, argv);   // checker input output answer
//   long long n = inf.readLong();     // the test's input
//   long long a = ouf.readLong();     // the program's output (bad format: presentation error)
//   quitf(_wa, "expected %lld", n);   // exit 1, the message on stderr
#pragma once
#include <cctype>
#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <string>

enum TResult { _ok = 0, _wa = 1, _pe = 2, _fail = 3, _points = 7 };

[[noreturn]] inline void quitf(TResult result, const char *format, ...) {
    static const char *names[] = {"ok", "wrong answer", "wrong output format", "FAIL"};
    std::fprintf(stderr, "%s ", result <= _fail ? names[result] : "points");
    va_list args;
    va_start(args, format);
    std::vfprintf(stderr, format, args);
    va_end(args);
    std::fputc('\n', stderr);
    std::exit(result);
}

[[noreturn]] inline void quitp(double points, const char *message) {
    std::fprintf(stderr, "points %.6f %s\n", points, message);
    std::exit(_points);
}

class InStream {
  public:
    void open(const char *path, TResult on_error) {
        file = std::fopen(path, "rb");
        error = on_error;
        if (!file) quitf(_fail, "cannot open %s", path);
    }
    std::string readToken() {
        skipBlanks();
        std::string token;
        for (int c = std::fgetc(file); c != EOF && !std::isspace(c); c = std::fgetc(file))
            token += static_cast<char>(c);
        if (token.empty()) quitf(error, "unexpected end of file, a token expected");
        return token;
    }
    long long readLong() {
        std::string token = readToken();
        char *end = nullptr;
        long long value = std::strtoll(token.c_str(), &end, 10);
        if (*end != '\0') quitf(error, "expected an integer, found '%s'", token.c_str());
        return value;
    }
    int readInt() { return static_cast<int>(readLong()); }
    bool seekEof() {
        skipBlanks();
        int c = std::fgetc(file);
        if (c == EOF) return true;
        std::ungetc(c, file);
        return false;
    }

  private:
    void skipBlanks() {
        int c;
        do c = std::fgetc(file); while (c != EOF && std::isspace(c));
        if (c != EOF) std::ungetc(c, file);
    }
    std::FILE *file = nullptr;
    TResult error = _fail;
};

inline InStream inf, ouf, ans;

inline void registerTestlibCmd(int argc, char *argv[]) {
    if (argc < 4) quitf(_fail, "usage: %s input output answer", argv[0]);
    inf.open(argv[1], _fail);  // the judge's files are the checker's to trust
    ouf.open(argv[2], _pe);    // the program's output: a bad format is its fault
    ans.open(argv[3], _fail);
}
