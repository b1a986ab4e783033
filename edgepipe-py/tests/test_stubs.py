"""The stub `_edgepipe.pyi` describes what the compiled module really has.

Compared with the live module: the names it exports, each class's bases and
members, whether a member is a property, a static method or a method, and each
callable's parameters (names, kinds, defaults) — constructors (`__init__` in the
stub, the class's own signature at run time) and module functions included.
Return types are not checked: the compiled module carries none.
"""

import ast
import inspect
from pathlib import Path

import pytest

import edgepipe
from edgepipe import _edgepipe

STUB = Path(edgepipe.__file__).with_name("_edgepipe.pyi")
TREE = ast.parse(STUB.read_text(), filename=str(STUB))

# Dunders a type checker relies on; the ones the module implements must be in the stub.
PROTOCOL_DUNDERS = {
    "__len__",
    "__iter__",
    "__next__",
    "__contains__",
    "__getitem__",
    "__enter__",
    "__exit__",
    "__eq__",
    "__hash__",
    "__bool__",
    "__call__",
}


def base_names(node: ast.ClassDef) -> list:
    return [ast.unparse(base) for base in node.bases]


def is_type_only(node: ast.ClassDef) -> bool:
    """TypedDicts describe plain dicts; they exist in the stub only."""
    return "TypedDict" in base_names(node)


STUB_CLASSES = {
    node.name: node
    for node in TREE.body
    if isinstance(node, ast.ClassDef) and not is_type_only(node)
}


def stub_module_names() -> set:
    names = set(STUB_CLASSES)
    for node in TREE.body:
        if isinstance(node, ast.FunctionDef):
            names.add(node.name)
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
    return names


def runtime_module_names() -> set:
    return {
        name
        for name in vars(_edgepipe)
        if not name.startswith("_") or name == "__version__"
    }


def stub_members(node: ast.ClassDef) -> dict:
    return {item.name: item for item in node.body if isinstance(item, ast.FunctionDef)}


def decorators(function: ast.FunctionDef) -> set:
    return {ast.unparse(decorator) for decorator in function.decorator_list}


def stub_parameters(function: ast.FunctionDef, skip_first: bool) -> list:
    """(name, kind, has_default) for each parameter, as inspect.Parameter describes them."""
    args = function.args
    positional = [(arg, inspect.Parameter.POSITIONAL_ONLY) for arg in args.posonlyargs] + [
        (arg, inspect.Parameter.POSITIONAL_OR_KEYWORD) for arg in args.args
    ]
    first_default = len(positional) - len(args.defaults)
    parameters = [
        (arg.arg, kind, index >= first_default) for index, (arg, kind) in enumerate(positional)
    ]
    if args.vararg:
        parameters.append((args.vararg.arg, inspect.Parameter.VAR_POSITIONAL, False))
    parameters += [
        (arg.arg, inspect.Parameter.KEYWORD_ONLY, default is not None)
        for arg, default in zip(args.kwonlyargs, args.kw_defaults)
    ]
    if args.kwarg:
        parameters.append((args.kwarg.arg, inspect.Parameter.VAR_KEYWORD, False))
    return parameters[1:] if skip_first else parameters


def runtime_parameters(function: object, skip_first: bool) -> list:
    parameters = [
        (parameter.name, parameter.kind, parameter.default is not inspect.Parameter.empty)
        for parameter in inspect.signature(function).parameters.values()
    ]
    return parameters[1:] if skip_first else parameters


def test_stub_declares_exactly_the_module_names() -> None:
    assert stub_module_names() == runtime_module_names()


def test_package_exports_every_module_name() -> None:
    assert sorted(edgepipe.__all__) == sorted(runtime_module_names())
    for name in edgepipe.__all__:
        assert getattr(edgepipe, name) is getattr(_edgepipe, name), name


@pytest.mark.parametrize("name", sorted(STUB_CLASSES))
def test_class_bases_match(name: str) -> None:
    runtime = getattr(_edgepipe, name)
    expected = base_names(STUB_CLASSES[name]) or ["object"]
    assert [base.__name__ for base in runtime.__bases__] == expected


@pytest.mark.parametrize("name", sorted(STUB_CLASSES))
def test_class_members_match(name: str) -> None:
    runtime = vars(getattr(_edgepipe, name))
    stub = stub_members(STUB_CLASSES[name])

    def public(names: object) -> set:
        return {member for member in names if not member.startswith("_")}

    # `__hash__: ClassVar[None]` (unhashable, as a dataclass with eq) is an annotation.
    annotated = {
        item.target.id
        for item in STUB_CLASSES[name].body
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name)
    }
    assert public(stub) == public(runtime)
    assert PROTOCOL_DUNDERS & (set(stub) | annotated) == PROTOCOL_DUNDERS & set(runtime)


@pytest.mark.parametrize(
    ("class_name", "member"),
    sorted(
        (class_name, member)
        for class_name, node in STUB_CLASSES.items()
        for member in stub_members(node)
    ),
)
def test_member_kinds_and_signatures_match(class_name: str, member: str) -> None:
    cls = getattr(_edgepipe, class_name)
    stub = stub_members(STUB_CLASSES[class_name])[member]
    if member == "__init__":
        # A native class is built by its `#[new]`; its signature is the class's own.
        assert stub_parameters(stub, skip_first=True) == runtime_parameters(cls, skip_first=False)
        return
    runtime = vars(cls).get(member)
    assert runtime is not None, f"{class_name}.{member} is not in the module"
    kinds = decorators(stub)

    # A property with a setter is two defs in the stub; the setter's is the one kept.
    if "property" in kinds or any(kind.endswith(".setter") for kind in kinds):
        assert inspect.isdatadescriptor(runtime), f"{member} is not a property at run time"
        return
    if "staticmethod" in kinds:
        assert isinstance(runtime, staticmethod), f"{member} is not a staticmethod at run time"
        assert stub_parameters(stub, skip_first=False) == runtime_parameters(
            getattr(cls, member), skip_first=False
        )
        return
    assert callable(runtime) and not isinstance(runtime, (staticmethod, classmethod))
    # `self` is positional-only at run time and plain in the stub: compare what follows it.
    assert stub_parameters(stub, skip_first=True) == runtime_parameters(runtime, skip_first=True)


STUB_FUNCTIONS = {node.name: node for node in TREE.body if isinstance(node, ast.FunctionDef)}


@pytest.mark.parametrize("name", sorted(STUB_FUNCTIONS))
def test_module_function_signatures_match(name: str) -> None:
    runtime = getattr(_edgepipe, name)
    assert stub_parameters(STUB_FUNCTIONS[name], skip_first=False) == runtime_parameters(
        runtime, skip_first=False
    )


def test_constructors_are_declared() -> None:
    """A class Python can instantiate has its `__init__` in the stub, and only then."""
    for name, node in STUB_CLASSES.items():
        cls = getattr(_edgepipe, name)
        if issubclass(cls, BaseException):
            continue
        try:
            constructible = inspect.signature(cls) is not None
        except ValueError:
            constructible = False
        assert ("__init__" in stub_members(node)) == constructible, name


def test_every_exception_is_an_edgepipe_error() -> None:
    exceptions = [
        node for node in STUB_CLASSES.values() if base_names(node) in (["Exception"], ["EdgepipeError"])
    ]
    assert len(exceptions) == 16
    for node in exceptions:
        assert issubclass(getattr(_edgepipe, node.name), edgepipe.EdgepipeError)


def test_package_is_marked_typed() -> None:
    assert STUB.with_name("py.typed").is_file()
