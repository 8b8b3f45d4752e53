// For each n read, prints how many primes there are up to n (a sieve). The class is Solution,
// not Main: the judge runs the class that declares main, whatever the file is called. An
// off-by-one for n = 2 makes one test a wrong answer.
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.io.IOException;
import java.util.StringTokenizer;

public class Solution {
    public static void main(String[] args) throws IOException {
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        StringBuilder out = new StringBuilder();
        for (String line; (line = in.readLine()) != null; ) {
            for (StringTokenizer words = new StringTokenizer(line); words.hasMoreTokens(); ) {
                int n = Integer.parseInt(words.nextToken());
                int count = primesUpTo(n);
                if (n == 2) {
                    count -= 1; // the bug
                }
                out.append(count).append('\n');
            }
        }
        System.out.print(out);
    }

    static int primesUpTo(int n) {
        boolean[] composite = new boolean[n + 1];
        int count = 0;
        for (int i = 2; i <= n; i++) {
            if (!composite[i]) {
                count++;
                for (long j = (long) i * i; j <= n; j += i) {
                    composite[(int) j] = true;
                }
            }
        }
        return count;
    }
}
