// Uses each assembly the run image keeps, and fails (exit 1, what it got on stderr) unless
// each gives what it should: the build runs it in the assembled root as the sandbox user.
using System;
using System.Collections.Generic;
using System.Linq;
using System.Numerics;
using System.Text.RegularExpressions;
using System.Threading.Tasks;

class Probe
{
    static int Main()
    {
        var input = Console.In.ReadToEnd();
        var sum = "3 4".Split(' ').Select(int.Parse).Sum();
        var big = BigInteger.Pow(2, 100);
        var sorted = new SortedSet<int> { 3, 1, 2 };
        var count = Regex.Matches("a1b2", "[0-9]").Count;
        var task = Task.Run(() => "ok");
        var got = $"{input.Length} {sum} {big} [{string.Join(",", sorted)}] {count} {task.Result}";
        if (got == "0 7 1267650600228229401496703205376 [1,2,3] 2 ok") return 0;
        Console.Error.WriteLine("probe got: " + got);
        return 1;
    }
}
