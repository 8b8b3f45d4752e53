// The Java compile step of the judge: compiles every source with the JDK's compiler in this
// JVM (no second start), finds the class to run and writes the classes into one jar whose
// manifest names it, the artifact every test runs (java -jar main.jar).
//
// Usage: JudgeCompile JAR MODULES SOURCE...
//   JAR      the jar to write (the compile step's artifact)
//   MODULES  the modules the run image has (comma-separated): nothing else is visible to the
//            program, so a class of another module is CE here rather than RE in every test
//   SOURCE   the program's source files, its entry first; none is ever an option
//
// File names are free: a public class need not be in a file named after it (the compiler's
// check is lifted), so a lone source written to Main.java may hold "public class Solution".
//
// The class it runs: among the top-level classes that declare
// "public static void main(String[])", those of the entry file, else those of every file;
// the only one, else the only public one among them. None, or several with none or several
// public: a compile error that says which.
import com.sun.source.util.JavacTask;
import com.sun.source.util.TaskEvent;
import com.sun.source.util.TaskListener;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.net.URI;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.stream.Collectors;
import javax.lang.model.element.Element;
import javax.lang.model.element.ElementKind;
import javax.lang.model.element.ExecutableElement;
import javax.lang.model.element.Modifier;
import javax.lang.model.element.TypeElement;
import javax.lang.model.type.ArrayType;
import javax.lang.model.type.TypeKind;
import javax.lang.model.type.TypeMirror;
import javax.tools.FileObject;
import javax.tools.ForwardingJavaFileManager;
import javax.tools.ForwardingJavaFileObject;
import javax.tools.JavaCompiler;
import javax.tools.JavaFileManager;
import javax.tools.JavaFileObject;
import javax.tools.SimpleJavaFileObject;
import javax.tools.StandardJavaFileManager;
import javax.tools.ToolProvider;

public final class JudgeCompile {
    // a fixed time for every jar entry: the same sources make the same jar
    private static final long EPOCH = 315532800000L; // 1980-01-01

    public static void main(String[] args) throws IOException {
        if (args.length < 3) {
            System.err.println("usage: JudgeCompile JAR MODULES SOURCE...");
            System.exit(2);
        }
        Path jar = Path.of(args[0]);
        String modules = args[1];
        List<String> sources = Arrays.asList(args).subList(2, args.length);
        JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
        StandardJavaFileManager files = javac.getStandardFileManager(null, null, null);
        Map<String, byte[]> classes = new TreeMap<>();
        List<JavaFileObject> units = new ArrayList<>();
        for (JavaFileObject unit : files.getJavaFileObjectsFromPaths(
                sources.stream().map(Path::of).collect(Collectors.toList()))) {
            units.add(new AnyName(unit));
        }
        List<String> options = List.of(
                "-encoding", "UTF-8", "--limit-modules", modules,
                "-proc:none", "-implicit:none", "-sourcepath", "", "-classpath", "");
        JavacTask task = (JavacTask) javac.getTask(
                new PrintWriter(System.err, true), new InMemory(files, classes), null, options,
                null, units);
        Map<TypeElement, JavaFileObject> declared = new LinkedHashMap<>();
        task.addTaskListener(new TaskListener() {
            @Override
            public void finished(TaskEvent event) {
                TypeElement type = event.getTypeElement();
                if (event.getKind() == TaskEvent.Kind.ANALYZE && type != null) {
                    declared.put(type, event.getSourceFile());
                }
            }
        });
        if (!task.call()) {
            System.exit(1);
        }
        String main = mainClass(declared, units.get(0));
        if (main == null) {
            System.exit(1);
        }
        write(jar, main, classes);
    }

    // the class to run, or null after saying why there is none
    private static String mainClass(
            Map<TypeElement, JavaFileObject> declared, JavaFileObject entry) {
        List<TypeElement> all = new ArrayList<>();
        List<TypeElement> inEntry = new ArrayList<>();
        declared.forEach((type, file) -> {
            if (hasMain(type)) {
                all.add(type);
                if (file.toUri().equals(entry.toUri())) {
                    inEntry.add(type);
                }
            }
        });
        List<TypeElement> found = inEntry.isEmpty() ? all : inEntry;
        if (found.isEmpty()) {
            System.err.println("error: no class declares public static void main(String[] args)"
                    + " (a top-level class must: it is the one that runs)");
            return null;
        }
        if (found.size() == 1) {
            return binaryName(found.get(0));
        }
        List<TypeElement> publics = found.stream()
                .filter(t -> t.getModifiers().contains(Modifier.PUBLIC))
                .collect(Collectors.toList());
        if (publics.size() == 1) {
            return binaryName(publics.get(0));
        }
        System.err.println("error: several classes declare main ("
                + found.stream().map(t -> t.getQualifiedName().toString())
                        .collect(Collectors.joining(", "))
                + "): make the one that runs the only public one");
        return null;
    }

    private static boolean hasMain(TypeElement type) {
        for (Element member : type.getEnclosedElements()) {
            if (member.getKind() != ElementKind.METHOD
                    || !member.getSimpleName().contentEquals("main")) {
                continue;
            }
            ExecutableElement method = (ExecutableElement) member;
            if (method.getModifiers().contains(Modifier.PUBLIC)
                    && method.getModifiers().contains(Modifier.STATIC)
                    && method.getReturnType().getKind() == TypeKind.VOID
                    && method.getParameters().size() == 1
                    && isStringArray(method.getParameters().get(0).asType())) {
                return true;
            }
        }
        return false;
    }

    private static boolean isStringArray(TypeMirror type) {
        return type.getKind() == TypeKind.ARRAY
                && ((ArrayType) type).getComponentType().toString().equals("java.lang.String");
    }

    private static String binaryName(TypeElement type) {
        return type.getQualifiedName().toString();
    }

    private static void write(Path jar, String main, Map<String, byte[]> classes)
            throws IOException {
        Manifest manifest = new Manifest();
        manifest.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        manifest.getMainAttributes().put(Attributes.Name.MAIN_CLASS, main);
        try (OutputStream file = Files.newOutputStream(jar);
                JarOutputStream out = new JarOutputStream(file)) {
            JarEntry head = new JarEntry("META-INF/MANIFEST.MF");
            head.setTime(EPOCH);
            out.putNextEntry(head);
            manifest.write(out);
            out.closeEntry();
            for (Map.Entry<String, byte[]> entry : classes.entrySet()) {
                JarEntry item = new JarEntry(entry.getKey().replace('.', '/') + ".class");
                item.setTime(EPOCH);
                out.putNextEntry(item);
                out.write(entry.getValue());
                out.closeEntry();
            }
        }
    }

    // A source file that answers to any class name: javac's "class X is public, should be
    // declared in a file named X.java" asks it, and file names are free here.
    private static final class AnyName extends ForwardingJavaFileObject<JavaFileObject> {
        AnyName(JavaFileObject file) {
            super(file);
        }

        @Override
        public boolean isNameCompatible(String simpleName, JavaFileObject.Kind kind) {
            return kind == JavaFileObject.Kind.SOURCE;
        }
    }

    // Class files kept in memory, by binary name, for the jar: nothing written beside the
    // sources.
    private static final class InMemory extends ForwardingJavaFileManager<JavaFileManager> {
        private final Map<String, byte[]> classes;

        InMemory(JavaFileManager files, Map<String, byte[]> classes) {
            super(files);
            this.classes = classes;
        }

        @Override
        public JavaFileObject getJavaFileForOutput(
                Location location, String name, JavaFileObject.Kind kind, FileObject sibling) {
            URI uri = URI.create("mem:///" + name.replace('.', '/') + kind.extension);
            return new SimpleJavaFileObject(uri, kind) {
                @Override
                public OutputStream openOutputStream() {
                    return new ByteArrayOutputStream() {
                        @Override
                        public void close() {
                            classes.put(name, toByteArray());
                        }
                    };
                }
            };
        }

        @Override
        public boolean isSameFile(FileObject a, FileObject b) {
            return a.toUri().equals(b.toUri());
        }
    }
}
