// The image's probe (the build runs it in the assembled root as the sandbox user) and its
// HEALTHCHECK: it touches a class of every module the run image keeps, and prints "hello".
import java.math.BigInteger;
import java.util.random.RandomGenerator;
import java.util.stream.IntStream;

public class Hello {
    public static void main(String[] args) throws ReflectiveOperationException {
        BigInteger sum = IntStream.rangeClosed(1, 3).mapToObj(BigInteger::valueOf)
                .reduce(BigInteger.ZERO, BigInteger::add);
        RandomGenerator.of("L64X128MixRandom").nextInt(); // jdk.random
        Class.forName("sun.misc.Unsafe"); // jdk.unsupported
        System.out.println(sum.intValue() == 6 ? "hello" : "wrong");
    }
}
