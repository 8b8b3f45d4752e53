// The interactor of a guessing game: it reads the secret and the query budget from its input
// file, answers each guess on stdin with "<" (the secret is smaller), ">" or "=", and ends the
// game as a testlib interactor would: exit 0 when the program guessed within the budget, 1
// when it ran out of queries or stopped talking. It writes the number of queries used to its
// output file (argv[2]), for a checker, should the problem have one.
#include <cstdio>

int main(int argc, char *argv[]) {
    if (argc < 3) return 3;
    std::FILE *input = std::fopen(argv[1], "r");
    long long secret, budget;
    if (!input || std::fscanf(input, "%lld %lld", &secret, &budget) != 2) {
        std::fprintf(stderr, "FAIL bad input file\n");
        return 3;
    }
    std::FILE *report = std::fopen(argv[2], "w");
    for (long long queries = 1;; queries++) {
        long long guess;
        if (std::scanf("%lld", &guess) != 1) {
            std::fprintf(stderr, "wrong answer the program stopped after %lld queries\n", queries - 1);
            return 1;
        }
        if (queries > budget) {
            std::fprintf(stderr, "wrong answer more than %lld queries\n", budget);
            return 1;
        }
        if (guess == secret) {
            std::printf("=\n");
            std::fflush(stdout);
            if (report) std::fprintf(report, "%lld\n", queries);
            std::fprintf(stderr, "ok guessed %lld in %lld queries\n", secret, queries);
            return 0;
        }
        std::printf("%s\n", guess > secret ? "<" : ">");
        std::fflush(stdout);
    }
}
