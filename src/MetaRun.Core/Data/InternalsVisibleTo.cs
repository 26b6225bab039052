using System.Runtime.CompilerServices;

[assembly: InternalsVisibleTo("MetaRun.Tests")]
