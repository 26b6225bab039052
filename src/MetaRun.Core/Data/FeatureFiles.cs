using System.Buffers.Binary;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CsvHelper;
using LibTorch;

namespace MetaRun.Data;

/// <summary>Examples read from one file: row i is Values[i·Dim .. (i+1)·Dim), its class Labels[i].</summary>
public sealed record FeatureTable(string Path, float[] Values, int Dim, string[] Labels)
{
    public int Rows => Labels.Length;
}

/// <summary>
/// Reads examples as vectors (data.dataset: features) from the three files people have
/// embeddings in: CSV with a header and a column named <c>label</c> (every other column a
/// number); NumPy's .npy, a 2-D [examples, features] array with the labels in NAME.labels.npy
/// beside it (integers or strings); safetensors with a 2-D <c>features</c> and a 1-D integer
/// <c>labels</c> tensor (and optionally the class names as a JSON list in the metadata key
/// <c>classes</c>). Every problem is a <see cref="DataException"/> naming the file and, for CSV,
/// the line.
/// </summary>
public static partial class FeatureFiles
{
    public static readonly string[] Extensions = [".csv", ".npy", ".safetensors"];
    public const string LabelColumn = "label";

    public static FeatureTable Read(string path)
    {
        if (!File.Exists(path)) throw new DataException($"{path}: features file not found");
        var table = Path.GetExtension(path).ToLowerInvariant() switch
        {
            ".csv" => ReadCsv(path),
            ".npy" => ReadNpy(path),
            ".safetensors" => ReadSafetensors(path),
            var ext => throw new DataException($"{path}: '{ext}' is not a features file; expected {string.Join(", ", Extensions)}"),
        };
        if (table.Rows == 0) throw new DataException($"{path}: no examples");
        if (table.Dim == 0) throw new DataException($"{path}: examples have no features");
        return table;
    }

    /// <summary>The labels file of NAME.npy: NAME.labels.npy.</summary>
    public static string NpyLabelsPath(string path) => Path.ChangeExtension(path, ".labels.npy");

    // CsvHelper parses (quotes, separators, line counting); the numbers are parsed here, invariantly, so "1,5" is never 1.5.
    private static FeatureTable ReadCsv(string path)
    {
        var options = CsvReaderOptions.Default with { TrackLineNumbers = true, SkipEmptyLines = true };
        try
        {
            using var csv = CsvReader.Create(File.OpenRead(path), options, false);
            var headers = csv.Headers.ToArray();
            if (headers.Length == 0) throw new DataException($"{path}:1: empty file; expected a header row with a '{LabelColumn}' column");
            var label = Array.IndexOf(headers, LabelColumn);
            if (label < 0)
                throw new DataException($"{path}:1: no '{LabelColumn}' column in the header ({Shorten(string.Join(",", headers))}); name the class column '{LabelColumn}'");
            var dim = headers.Length - 1;
            var values = new List<float>();
            var labels = new List<string>();
            while (csv.Read())
            {
                var line = csv.LineNumber;
                if (csv.FieldCount != headers.Length)
                    throw new DataException($"{path}:{line}: {csv.FieldCount} fields, but the header has {headers.Length}");
                for (var f = 0; f < headers.Length; f++)
                {
                    var cell = csv.GetString(f);
                    if (f == label)
                    {
                        if (cell.Trim().Length == 0) throw new DataException($"{path}:{line}: empty '{LabelColumn}'");
                        labels.Add(cell.Trim());
                        continue;
                    }
                    if (!float.TryParse(cell, NumberStyles.Float, CultureInfo.InvariantCulture, out var v))
                        throw new DataException($"{path}:{line}: column '{headers[f]}' is '{Shorten(cell)}', not a number");
                    if (!float.IsFinite(v)) throw new DataException($"{path}:{line}: column '{headers[f]}' is {cell}; features must be finite numbers");
                    values.Add(v);
                }
            }
            return new FeatureTable(path, [.. values], dim, [.. labels]);
        }
        catch (CsvFormatException e)
        {
            throw new DataException($"{path}:{e.LineNumber}: not valid CSV: {e.Message}", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataException($"{path}: cannot read: {e.Message}", e);
        }
    }

    private static FeatureTable ReadNpy(string path)
    {
        var labelsPath = NpyLabelsPath(path);
        var x = Npy.Read(path);
        if (x.Shape.Length != 2) throw new DataException($"{path}: a {x.Shape.Length}-D array of shape ({string.Join(", ", x.Shape)}); expected 2-D (examples, features)");
        if (x.Strings != null) throw new DataException($"{path}: holds strings; features must be numbers");
        if (!File.Exists(labelsPath)) throw new DataException($"{labelsPath}: not found; the labels of {Path.GetFileName(path)} go in a 1-D array beside it (np.save('{Path.GetFileName(labelsPath)}', y))");
        var y = Npy.Read(labelsPath);
        if (y.Shape.Length != 1 || y.Shape[0] != x.Shape[0])
            throw new DataException($"{labelsPath}: shape ({string.Join(", ", y.Shape)}); expected ({x.Shape[0]},), one label per row of {Path.GetFileName(path)}");
        var labels = y.Strings ?? y.Integers(labelsPath);
        var values = new float[x.Numbers!.Length];
        for (var i = 0; i < values.Length; i++)
        {
            values[i] = (float)x.Numbers[i];
            if (!float.IsFinite(values[i])) throw new DataException($"{path}: row {i / x.Shape[1]}, column {i % x.Shape[1]} is {x.Numbers[i].ToString(CultureInfo.InvariantCulture)}; features must be finite numbers");
        }
        return new FeatureTable(path, values, (int)x.Shape[1], labels);
    }

    private static FeatureTable ReadSafetensors(string path)
    {
        TensorFile file;
        try { file = Safetensors.Load(path); }
        catch (InvalidDataException e) { throw new DataException(e.Message, e); }
        using (file)
        {
            if (!file.Tensors.TryGetValue("features", out var x) || !file.Tensors.TryGetValue("labels", out var y))
                throw new DataException($"{path}: expected tensors 'features' (examples × features) and 'labels' (one integer per example); it has {string.Join(", ", file.Tensors.Keys.Select(k => $"'{k}'"))}");
            if (x.Dim != 2) throw new DataException($"{path}: 'features' has shape [{string.Join(", ", x.Shape)}]; expected 2-D [examples, features]");
            if (y.Dim != 1 || y.Size(0) != x.Size(0)) throw new DataException($"{path}: 'labels' has shape [{string.Join(", ", y.Shape)}]; expected [{x.Size(0)}], one per row of 'features'");
            if (y.DType is not (ScalarType.Int64 or ScalarType.Int32 or ScalarType.UInt8))
                throw new DataException($"{path}: 'labels' is {y.DType}; expected integers (I64, I32 or U8)");
            using var scope = Torch.NewScope();
            var values = x.To(ScalarType.Float32).Contiguous().ToArray<float>();
            var ints = y.To(ScalarType.Int64).ToArray<long>();
            string[]? names = null;
            if (file.Metadata.TryGetValue("classes", out var json))
            {
                try { names = JsonSerializer.Deserialize<string[]>(json); }
                catch (JsonException) { }
                if (names == null) throw new DataException($"{path}: metadata 'classes' is not a JSON list of names");
            }
            var labels = new string[ints.Length];
            for (var i = 0; i < ints.Length; i++)
            {
                if (names != null && (ints[i] < 0 || ints[i] >= names.Length))
                    throw new DataException($"{path}: label {ints[i]} of example {i} has no name in metadata 'classes' ({names.Length} names)");
                labels[i] = names != null ? names[ints[i]] : ints[i].ToString(CultureInfo.InvariantCulture);
            }
            for (var i = 0; i < values.Length; i++)
                if (!float.IsFinite(values[i])) throw new DataException($"{path}: 'features' row {i / x.Size(1)}, column {i % x.Size(1)} is {values[i].ToString(CultureInfo.InvariantCulture)}; features must be finite numbers");
            return new FeatureTable(path, values, (int)x.Size(1), labels);
        }
    }

    private static string Shorten(string s) => s.Length <= 40 ? s : s[..40] + "…";

    /// <summary>
    /// The .npy format (NumPy's NEP 1): magic, version, a Python-literal header giving descr,
    /// fortran_order and shape, then the raw array. Written by hand because no maintained .NET
    /// package reads it without bringing a whole numerics stack; only what np.save writes for
    /// numeric and Unicode-string arrays is read.
    /// </summary>
    private static partial class Npy
    {
        public sealed record Array(long[] Shape, double[]? Numbers, string[]? Strings)
        {
            public string[] Integers(string path)
            {
                var r = new string[Numbers!.Length];
                for (var i = 0; i < r.Length; i++)
                {
                    if (Numbers[i] != Math.Floor(Numbers[i])) throw new DataException($"{path}: label {Numbers[i].ToString(CultureInfo.InvariantCulture)} of example {i} is not an integer; labels are integers or strings");
                    r[i] = ((long)Numbers[i]).ToString(CultureInfo.InvariantCulture);
                }
                return r;
            }
        }

        [GeneratedRegex(@"'descr'\s*:\s*'([<>|=])([a-zA-Z])(\d+)'")] private static partial Regex Descr();
        [GeneratedRegex(@"'fortran_order'\s*:\s*(True|False)")] private static partial Regex Fortran();
        [GeneratedRegex(@"'shape'\s*:\s*\(([^)]*)\)")] private static partial Regex ShapeOf();

        public static Array Read(string path)
        {
            byte[] bytes;
            try { bytes = File.ReadAllBytes(path); }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException) { throw new DataException($"{path}: cannot read: {e.Message}", e); }
            if (bytes.Length < 10 || bytes[0] != 0x93 || Encoding.ASCII.GetString(bytes, 1, 5) != "NUMPY")
                throw new DataException($"{path}: not a .npy file (no \\x93NUMPY magic); save arrays with np.save");
            int headerLength, start;
            if (bytes[6] == 1) (headerLength, start) = (BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(8)), 10);
            else if (bytes.Length >= 12) (headerLength, start) = ((int)Math.Min(BinaryPrimitives.ReadUInt32LittleEndian(bytes.AsSpan(8)), int.MaxValue), 12);
            else throw new DataException($"{path}: truncated .npy header");
            if (start + (long)headerLength > bytes.Length) throw new DataException($"{path}: truncated .npy header");
            var header = Encoding.Latin1.GetString(bytes, start, headerLength);
            var descr = Descr().Match(header);
            var fortran = Fortran().Match(header);
            var shapeMatch = ShapeOf().Match(header);
            if (!descr.Success || !fortran.Success || !shapeMatch.Success)
                throw new DataException($"{path}: .npy header '{header.Trim()}' is not a plain array (structured and object arrays are not read; save a numeric or string array)");
            var shape = shapeMatch.Groups[1].Value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(s => long.Parse(s, CultureInfo.InvariantCulture)).ToArray();
            var count = shape.Aggregate(1L, (a, b) => a * b);
            var (order, kind, size) = (descr.Groups[1].Value[0], descr.Groups[2].Value[0], int.Parse(descr.Groups[3].Value, CultureInfo.InvariantCulture));
            if (order == '>') throw new DataException($"{path}: big-endian data ('{descr.Value}'); save little-endian (arr.astype('<f4'))");
            var data = bytes.AsSpan(start + headerLength);
            var itemBytes = kind == 'U' ? 4L * size : size;
            if (data.Length < count * itemBytes) throw new DataException($"{path}: holds {data.Length} data bytes; shape ({string.Join(", ", shape)}) of '{descr.Groups[2].Value}{size}' needs {count * itemBytes}");
            if (kind == 'U')
            {
                var strings = new string[count];
                for (var i = 0; i < count; i++)
                {
                    var s = new StringBuilder();
                    for (var c = 0; c < size; c++)
                    {
                        var cp = BinaryPrimitives.ReadInt32LittleEndian(data.Slice((int)(i * itemBytes + 4 * c)));
                        if (cp == 0) break;
                        s.Append(char.ConvertFromUtf32(cp));
                    }
                    strings[i] = s.ToString();
                }
                return new Array(shape, null, strings);
            }
            var numbers = new double[count];
            for (var i = 0; i < count; i++)
            {
                var item = data.Slice((int)(i * size), size);
                numbers[i] = (kind, size) switch
                {
                    ('f', 4) => BinaryPrimitives.ReadSingleLittleEndian(item),
                    ('f', 8) => BinaryPrimitives.ReadDoubleLittleEndian(item),
                    ('f', 2) => (double)BinaryPrimitives.ReadHalfLittleEndian(item),
                    ('i', 1) => (sbyte)item[0],
                    ('i', 2) => BinaryPrimitives.ReadInt16LittleEndian(item),
                    ('i', 4) => BinaryPrimitives.ReadInt32LittleEndian(item),
                    ('i', 8) => BinaryPrimitives.ReadInt64LittleEndian(item),
                    ('u', 1) or ('b', 1) => item[0],
                    ('u', 2) => BinaryPrimitives.ReadUInt16LittleEndian(item),
                    ('u', 4) => BinaryPrimitives.ReadUInt32LittleEndian(item),
                    ('u', 8) => BinaryPrimitives.ReadUInt64LittleEndian(item),
                    _ => throw new DataException($"{path}: dtype '{descr.Groups[2].Value}{size}' is not read; save float32, float64, integers or strings"),
                };
            }
            if (fortran.Groups[1].Value == "True" && shape.Length == 2)
            {
                // Column-major: element (r, c) is at c·rows + r.
                var (rows, cols) = (shape[0], shape[1]);
                var c = new double[count];
                for (long r = 0; r < rows; r++)
                    for (long k = 0; k < cols; k++) c[r * cols + k] = numbers[k * rows + r];
                numbers = c;
            }
            return new Array(shape, numbers, null);
        }
    }
}
