{ Reads two numbers, uses the RTL's SysUtils and Math: the build fails unless it prints
  "probe 7 3.00" in an empty root. }
program probe;
uses SysUtils, Math;
var a, b: longint;
begin
  read(a, b);
  writeln('probe ', a + b, ' ', FormatFloat('0.00', Max(a, b) - 1));
end.
